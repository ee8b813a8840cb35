//! SDK errors classified into the core's [`PortError`], keeping the cause.

use std::error::Error;

use auth_events_core::ports::PortError;
use aws_sdk_dynamodb::config::http::HttpResponse;
use aws_sdk_dynamodb::error::{ProvideErrorMetadata, SdkError};

/// Error codes, across the services we call, that a later attempt can fix,
/// including DynamoDB's cancellation reasons of a transaction.
pub fn code_is_retryable(code: &str) -> bool {
    matches!(
        code,
        "ThrottlingException"
            | "Throttling"
            | "ThrottledException"
            | "RequestThrottled"
            | "RequestThrottledException"
            | "ProvisionedThroughputExceededException"
            | "RequestLimitExceeded"
            | "TransactionConflictException"
            | "TransactionConflict"
            | "ThrottlingError"
            | "ProvisionedThroughputExceeded"
            | "TransactionInProgressException"
            | "InternalServerError"
            | "InternalFailure"
            | "InternalError"
            | "ServiceUnavailable"
            | "ServiceUnavailableException"
            | "IDPCommunicationError"
    )
}

/// The error and every cause under it on one line, `error: cause: cause`,
/// so the on-call reads the SDK's reason and not only our summary.
pub fn cause_chain(error: &dyn Error) -> String {
    let mut text = error.to_string();
    let mut cause = error.source();
    while let Some(inner) = cause {
        text.push_str(": ");
        text.push_str(&inner.to_string());
        cause = inner.source();
    }
    text
}

/// The innermost cause: for a dispatch failure, the line that says what
/// actually went wrong ("Connection refused"), without the wrapper chain.
fn root_cause(error: &(dyn Error + 'static)) -> String {
    let mut cause = error;
    while let Some(source) = cause.source() {
        cause = source;
    }
    cause.to_string()
}

/// Classifies an SDK error: timeouts, dispatch failures, 5xx and throttling
/// are transient; everything else is permanent.
pub fn classify<E>(operation: &'static str, error: SdkError<E, HttpResponse>) -> PortError
where
    E: ProvideErrorMetadata + Error + Send + Sync + 'static,
{
    let (retryable, code) = match &error {
        SdkError::TimeoutError(_) => (true, "Timeout".to_owned()),
        SdkError::DispatchFailure(_) => (true, "DispatchFailure".to_owned()),
        SdkError::ResponseError(_) => (true, "ResponseError".to_owned()),
        SdkError::ServiceError(context) => {
            let code = context.err().code().unwrap_or("Unknown").to_owned();
            // A 5xx is the service's fault whatever code it carries; with SDK
            // retries off, this is the only place that would notice.
            let server_fault = context.raw().status().is_server_error();
            (server_fault || code_is_retryable(&code), code)
        }
        _ => (false, "ConstructionFailure".to_owned()),
    };
    let message = error
        .message()
        .map_or_else(|| format!("{error}: {}", root_cause(&error)), str::to_owned);
    let source = Some(Box::new(error) as _);
    if retryable {
        PortError::Transient {
            operation,
            code,
            message,
            source,
        }
    } else {
        PortError::Permanent {
            operation,
            code,
            message,
            source,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn throttling_and_conflicts_are_retryable_access_denied_is_not() {
        for code in [
            "ThrottlingException",
            "ProvisionedThroughputExceededException",
            "TransactionConflictException",
            "TransactionConflict",
            "ThrottlingError",
            "ProvisionedThroughputExceeded",
        ] {
            assert!(code_is_retryable(code), "{code}");
        }
        for code in [
            "AccessDeniedException",
            "ResourceNotFoundException",
            "ValidationException",
        ] {
            assert!(!code_is_retryable(code), "{code}");
        }
    }

    fn put_events_failure(status: u16, code: &str) -> PortError {
        use aws_sdk_eventbridge::error::ErrorMetadata;
        use aws_sdk_eventbridge::operation::put_events::PutEventsError;
        use aws_smithy_types::body::SdkBody;

        let error = PutEventsError::generic(ErrorMetadata::builder().code(code).build());
        let status = status.try_into().expect("a valid status");
        classify(
            "PutEvents",
            SdkError::service_error(error, HttpResponse::new(status, SdkBody::empty())),
        )
    }

    #[test]
    fn a_server_fault_is_retryable_whatever_its_code() {
        assert!(put_events_failure(503, "SomethingNew").is_retryable());
        assert!(put_events_failure(500, "InternalException").is_retryable());
    }

    #[test]
    fn a_client_fault_is_retryable_only_by_its_code() {
        assert!(put_events_failure(400, "ThrottlingException").is_retryable());
        assert!(!put_events_failure(400, "ValidationException").is_retryable());
        assert!(!put_events_failure(403, "AccessDeniedException").is_retryable());
    }
}
