//! SDK errors classified into the core's [`PortError`], keeping the cause.

use std::error::Error;
use std::fmt::Debug;

use auth_events_core::ports::PortError;
use aws_sdk_dynamodb::error::{ProvideErrorMetadata, SdkError};

/// Error codes, across the services we call, that a later attempt can fix.
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
            | "TransactionInProgressException"
            | "InternalServerError"
            | "InternalFailure"
            | "InternalError"
            | "ServiceUnavailable"
            | "ServiceUnavailableException"
            | "IDPCommunicationError"
    )
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
pub fn classify<E, R>(operation: &'static str, error: SdkError<E, R>) -> PortError
where
    E: ProvideErrorMetadata + Error + Send + Sync + 'static,
    R: Debug + Send + Sync + 'static,
{
    let (retryable, code) = match &error {
        SdkError::TimeoutError(_) => (true, "Timeout".to_owned()),
        SdkError::DispatchFailure(_) => (true, "DispatchFailure".to_owned()),
        SdkError::ResponseError(_) => (true, "ResponseError".to_owned()),
        SdkError::ServiceError(context) => {
            let code = context.err().code().unwrap_or("Unknown").to_owned();
            (code_is_retryable(&code), code)
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
}
