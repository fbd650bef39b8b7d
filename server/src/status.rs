//! gRPC status codes for everything that can go wrong, with messages that name the field
//! or the limit.

use prism_dataflows::QueryError;
use prism_dataflows::{EngineError, RejectKind, Rejection};
use tonic::{Code, Status};

pub fn from_rejection(rejection: &Rejection, field_prefix: &str) -> Status {
    Status::new(code_of(&rejection.kind), format!("{field_prefix}{}", rejection.message))
}

pub fn code_of(kind: &RejectKind) -> Code {
    match kind {
        RejectKind::NotFound => Code::NotFound,
        RejectKind::AlreadyExists => Code::AlreadyExists,
        RejectKind::FailedPrecondition => Code::FailedPrecondition,
        RejectKind::InvalidArgument => Code::InvalidArgument,
        RejectKind::ResourceExhausted => Code::ResourceExhausted,
    }
}

/// The name gRPC gives a code, for `ItemError.code`.
pub fn code_name(code: Code) -> &'static str {
    match code {
        Code::NotFound => "NOT_FOUND",
        Code::AlreadyExists => "ALREADY_EXISTS",
        Code::FailedPrecondition => "FAILED_PRECONDITION",
        Code::InvalidArgument => "INVALID_ARGUMENT",
        Code::ResourceExhausted => "RESOURCE_EXHAUSTED",
        _ => "INTERNAL",
    }
}

pub fn from_engine(error: EngineError) -> Status {
    let message = error.to_string();
    match error {
        EngineError::NoLog | EngineError::Log(_) | EngineError::Shutdown => Status::unavailable(message),
        EngineError::Limit(_) => Status::resource_exhausted(message),
        EngineError::LsnNotApplied { .. } => Status::deadline_exceeded(format!("x-prism-min-lsn: {message}")),
        EngineError::Timeout(_) => Status::deadline_exceeded(message),
        // The state the query started on was compacted away under it: retrying succeeds.
        EngineError::Compacted { .. } => Status::aborted(message),
        EngineError::Start(_) | EngineError::Subscription(_) => Status::internal(message),
        EngineError::NotHere(_) => Status::failed_precondition(message),
    }
}

pub fn invalid(field: &str, problem: impl std::fmt::Display) -> Status {
    Status::invalid_argument(format!("{field}: {problem}"))
}

/// Statuses of multi-step queries (traversals, paths, cycles).
pub fn from_query(error: QueryError) -> Status {
    let message = error.to_string();
    match error {
        QueryError::NotFound { .. } => Status::not_found(message),
        QueryError::InvalidArgument(_) => Status::invalid_argument(message),
        QueryError::Limit { .. } => Status::resource_exhausted(message),
        QueryError::Timeout(_) => Status::deadline_exceeded(message),
        QueryError::Engine(e) => from_engine(e),
    }
}
