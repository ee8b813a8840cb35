//! The local HTTP front: API Gateway's HTTP API (payload v2) in front of the
//! token exchange handler, and Google's certificate endpoint for the
//! development key.

use std::sync::Arc;

use aws_lambda_events::apigw::{ApiGatewayV2httpRequest, ApiGatewayV2httpResponse};
use aws_lambda_events::encodings::Body;
use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::any;

pub const EXCHANGE_PATH: &str = "/auth/exchange";
pub const CERTIFICATES_PATH: &str = "/dev/firebase-certs";

/// Whatever answers a payload-v2 request: the token exchange handler.
pub trait HttpFunction: Send + Sync + 'static {
    fn invoke(
        &self,
        request: ApiGatewayV2httpRequest,
    ) -> impl Future<Output = ApiGatewayV2httpResponse> + Send;
}

/// The request as API Gateway hands it to the function.
pub fn to_lambda_request(
    method: Method,
    path: &str,
    headers: HeaderMap,
    body: &Bytes,
) -> ApiGatewayV2httpRequest {
    let mut request = ApiGatewayV2httpRequest::default();
    request.version = Some("2.0".to_owned());
    request.route_key = Some(format!("{method} {path}"));
    request.raw_path = Some(path.to_owned());
    request.headers = headers;
    request.request_context.http.method = method;
    request.request_context.http.path = Some(path.to_owned());
    request.request_context.stage = Some("$default".to_owned());
    request.body = (!body.is_empty()).then(|| String::from_utf8_lossy(body).into_owned());
    request.is_base64_encoded = false;
    request
}

fn to_http_response(response: ApiGatewayV2httpResponse) -> Response {
    let status = u16::try_from(response.status_code)
        .ok()
        .and_then(|code| StatusCode::from_u16(code).ok())
        .unwrap_or(StatusCode::BAD_GATEWAY);
    let body = match response.body {
        Some(Body::Text(text)) => text.into_bytes(),
        Some(Body::Binary(bytes)) => bytes,
        _ => Vec::new(),
    };
    (status, response.headers, body).into_response()
}

async fn exchange<F: HttpFunction>(
    State(function): State<Arc<F>>,
    method: Method,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let request = to_lambda_request(method, EXCHANGE_PATH, headers, &body);
    to_http_response(function.invoke(request).await)
}

/// The exchange route plus the certificate route of `certificates`.
pub fn router<F: HttpFunction>(function: Arc<F>, certificates: Router) -> Router {
    Router::new()
        .route(EXCHANGE_PATH, any(exchange::<F>))
        .with_state(function)
        .merge(certificates)
}
