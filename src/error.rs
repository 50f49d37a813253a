//! The core's error: what went wrong with a request or a session, in the terms a client
//! can act on. Transports map each kind to their own codes (gRPC status codes in
//! `server/`, exit codes and messages in the CLI); the core never sees those.

/// An error of the core, by what the client can do about it. The message names the
/// problem and, where one applies, the limit or setting involved.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// The request itself is wrong: fix it.
    #[error("{0}")]
    InvalidArgument(String),
    /// What it names does not exist (a session that is not live).
    #[error("{0}")]
    NotFound(String),
    /// What it would create exists already (a live or recorded session id).
    #[error("{0}")]
    AlreadyExists(String),
    /// The server is not in a state to do it (models missing, no frame yet).
    #[error("{0}")]
    FailedPrecondition(String),
    /// A limit was reached; the message names it and the setting that raises it.
    #[error("{0}")]
    ResourceExhausted(String),
    /// A backend cannot be reached now; trying later may work.
    #[error("{0}")]
    Unavailable(String),
    /// A backend did not answer in time.
    #[error("{0}")]
    DeadlineExceeded(String),
    /// Not built in this version.
    #[error("{0}")]
    Unimplemented(String),
    /// No valid token was sent to a server that requires one.
    #[error("{0}")]
    Unauthenticated(String),
    /// The token is valid but its roles do not allow this (or the session is another's).
    #[error("{0}")]
    PermissionDenied(String),
    /// A fault of the server (a failed write, a panicked worker); the message says which.
    #[error("{0}")]
    Internal(String),
}

impl Error {
    /// The message alone, without the kind.
    pub fn message(&self) -> &str {
        match self {
            Error::InvalidArgument(m)
            | Error::NotFound(m)
            | Error::AlreadyExists(m)
            | Error::FailedPrecondition(m)
            | Error::ResourceExhausted(m)
            | Error::Unavailable(m)
            | Error::DeadlineExceeded(m)
            | Error::Unimplemented(m)
            | Error::Unauthenticated(m)
            | Error::PermissionDenied(m)
            | Error::Internal(m) => m,
        }
    }

    /// The kind's name as gRPC spells it ("InvalidArgument"), for messages that travel
    /// inside a stream (a failed explanation inside a session).
    pub fn kind_name(&self) -> &'static str {
        match self {
            Error::InvalidArgument(_) => "InvalidArgument",
            Error::NotFound(_) => "NotFound",
            Error::AlreadyExists(_) => "AlreadyExists",
            Error::FailedPrecondition(_) => "FailedPrecondition",
            Error::ResourceExhausted(_) => "ResourceExhausted",
            Error::Unavailable(_) => "Unavailable",
            Error::DeadlineExceeded(_) => "DeadlineExceeded",
            Error::Unimplemented(_) => "Unimplemented",
            Error::Unauthenticated(_) => "Unauthenticated",
            Error::PermissionDenied(_) => "PermissionDenied",
            Error::Internal(_) => "Internal",
        }
    }

    /// The same kind with more said before the message.
    pub fn context(self, prefix: impl std::fmt::Display) -> Error {
        let with = |m: String| format!("{prefix}: {m}");
        match self {
            Error::InvalidArgument(m) => Error::InvalidArgument(with(m)),
            Error::NotFound(m) => Error::NotFound(with(m)),
            Error::AlreadyExists(m) => Error::AlreadyExists(with(m)),
            Error::FailedPrecondition(m) => Error::FailedPrecondition(with(m)),
            Error::ResourceExhausted(m) => Error::ResourceExhausted(with(m)),
            Error::Unavailable(m) => Error::Unavailable(with(m)),
            Error::DeadlineExceeded(m) => Error::DeadlineExceeded(with(m)),
            Error::Unimplemented(m) => Error::Unimplemented(with(m)),
            Error::Unauthenticated(m) => Error::Unauthenticated(with(m)),
            Error::PermissionDenied(m) => Error::PermissionDenied(with(m)),
            Error::Internal(m) => Error::Internal(with(m)),
        }
    }

    /// An INTERNAL error for a worker that panicked, with the panic's message.
    pub fn panicked(worker: &str, payload: &(dyn std::any::Any + Send)) -> Error {
        let what = payload
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| payload.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "no message".to_string());
        Error::Internal(format!(
            "the {worker} failed unexpectedly (a bug: it panicked: {what}); please report it"
        ))
    }
}

/// Runs `work`, turning a panic into [`Error::Internal`] naming `worker`, so that a bug in
/// one request or session ends that request or session with an error instead of a silent
/// end of its stream.
pub fn catch_panic<T>(worker: &str, work: impl FnOnce() -> Result<T, Error>) -> Result<T, Error> {
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(work)) {
        Ok(result) => result,
        Err(payload) => Err(Error::panicked(worker, payload.as_ref())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_panic_becomes_an_internal_error_with_its_message() {
        let e = catch_panic::<()>("vision worker", || panic!("index out of bounds")).unwrap_err();
        assert!(
            matches!(&e, Error::Internal(m) if m.contains("vision worker") && m.contains("index out of bounds")),
            "{e}"
        );
        let e = catch_panic::<()>("x", || panic!("{}", String::from("formatted"))).unwrap_err();
        assert!(e.message().contains("formatted"));
        assert_eq!(catch_panic("x", || Ok(3)), Ok(3));
    }
}
