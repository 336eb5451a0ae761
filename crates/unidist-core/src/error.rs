//! The one error type of unidist, its portable [`ErrorKind`], and the stored error of a failed task.

use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use unidist_config::ConfigError;
use unidist_serialize::SerializeError;

/// `Result` with [`Error`] as the default error type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong in a unidist call.
///
/// Tests and programs should match on [`Error::kind`], which is stable across backends, rather
/// than on message text.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A configuration parameter has a bad value (from the environment or from `put`).
    #[error(transparent)]
    Config(Arc<ConfigError>),

    /// A value could not be encoded or decoded.
    #[error(transparent)]
    Serialize(Arc<SerializeError>),

    /// A task or actor method failed; every `get` of its outputs returns this.
    #[error(transparent)]
    Task(Arc<TaskError>),

    /// A call was made on an actor that was killed or whose process is gone.
    #[error("actor {actor} is not alive: {reason}")]
    ActorDead {
        /// The actor, as `Class#id`.
        actor: String,
        /// Why it is gone (killed, its worker died, ...).
        reason: String,
    },

    /// A value was not ready in time.
    #[error("{what} was not ready after {after:?}")]
    Timeout {
        /// What was waited for.
        what: String,
        /// The time limit that ran out.
        after: Duration,
    },

    /// An argument of an API call is out of range.
    #[error("invalid {what} {value}: expected {expected}")]
    InvalidArgument {
        /// Which argument.
        what: String,
        /// The value given.
        value: String,
        /// What is accepted.
        expected: String,
    },

    /// The runtime was shut down and not started again.
    #[error("the unidist runtime was shut down: call unidist::init() to start it again")]
    ShutDown,

    /// A ref or actor handle belongs to a runtime that has since been shut down.
    #[error("{what} belongs to a unidist runtime that was shut down")]
    StaleRef {
        /// The ref or handle.
        what: String,
    },

    /// A stored object does not have the type the ref claims.
    #[error("object {object} has type {found}, not the requested {expected}")]
    TypeMismatch {
        /// The object.
        object: String,
        /// The type the caller asked for.
        expected: &'static str,
        /// The type that is stored.
        found: String,
    },

    /// The chosen backend cannot be started.
    #[error("backend {backend} is unavailable: {reason}")]
    BackendUnavailable {
        /// The backend name.
        backend: String,
        /// Why, and what to do about it.
        reason: String,
    },

    /// The backend does not support this operation.
    #[error("{what} is not supported by the {backend} backend")]
    Unsupported {
        /// The operation.
        what: String,
        /// The backend name.
        backend: &'static str,
    },

    /// A failure inside a backend (communication, a lost worker, a protocol error).
    #[error("{backend} backend: {message}")]
    Backend {
        /// The backend name.
        backend: &'static str,
        /// What failed.
        message: String,
    },

    /// A call was cancelled with `unidist::cancel` (or depends on one that was); its outputs
    /// hold this error.
    #[error("{what} was cancelled")]
    Cancelled {
        /// The call or object, as the function name or the object id.
        what: String,
    },

    /// A call or object was lost with the worker process that held it.
    #[error("{what} was lost with its worker: {reason}")]
    WorkerLost {
        /// The call or object.
        what: String,
        /// Which worker (rank and host) and how it was lost.
        reason: String,
    },

    /// An error that was raised in another process and carried here as its kind and message.
    #[error("{message}")]
    Remote {
        /// The kind of the original error.
        kind: ErrorKind,
        /// The original message.
        message: String,
    },
}

/// The portable classification of an [`Error`]; what tests assert on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[non_exhaustive]
pub enum ErrorKind {
    /// [`Error::Config`].
    Config,
    /// [`Error::Serialize`].
    Serialize,
    /// [`Error::Task`].
    TaskFailed,
    /// [`Error::ActorDead`].
    ActorDead,
    /// [`Error::Timeout`].
    Timeout,
    /// [`Error::InvalidArgument`].
    InvalidArgument,
    /// [`Error::ShutDown`].
    ShutDown,
    /// [`Error::StaleRef`].
    StaleRef,
    /// [`Error::TypeMismatch`].
    TypeMismatch,
    /// [`Error::BackendUnavailable`].
    BackendUnavailable,
    /// [`Error::Unsupported`].
    Unsupported,
    /// [`Error::Backend`].
    Backend,
    /// [`Error::Cancelled`].
    Cancelled,
    /// [`Error::WorkerLost`].
    WorkerLost,
}

impl Error {
    /// The portable kind of this error; for [`Error::Remote`] the kind of the original error.
    pub fn kind(&self) -> ErrorKind {
        match self {
            Error::Config(_) => ErrorKind::Config,
            Error::Serialize(_) => ErrorKind::Serialize,
            Error::Task(_) => ErrorKind::TaskFailed,
            Error::ActorDead { .. } => ErrorKind::ActorDead,
            Error::Timeout { .. } => ErrorKind::Timeout,
            Error::InvalidArgument { .. } => ErrorKind::InvalidArgument,
            Error::ShutDown => ErrorKind::ShutDown,
            Error::StaleRef { .. } => ErrorKind::StaleRef,
            Error::TypeMismatch { .. } => ErrorKind::TypeMismatch,
            Error::BackendUnavailable { .. } => ErrorKind::BackendUnavailable,
            Error::Unsupported { .. } => ErrorKind::Unsupported,
            Error::Backend { .. } => ErrorKind::Backend,
            Error::Cancelled { .. } => ErrorKind::Cancelled,
            Error::WorkerLost { .. } => ErrorKind::WorkerLost,
            Error::Remote { kind, .. } => *kind,
        }
    }

    /// The stored task error, if this is a task failure.
    pub fn task_error(&self) -> Option<&TaskError> {
        match self {
            Error::Task(t) => Some(t),
            _ => None,
        }
    }

    /// Shorthand for [`Error::InvalidArgument`].
    pub fn invalid(
        what: impl Into<String>,
        value: impl std::fmt::Display,
        expected: impl Into<String>,
    ) -> Self {
        Error::InvalidArgument {
            what: what.into(),
            value: value.to_string(),
            expected: expected.into(),
        }
    }

    /// Shorthand for [`Error::Backend`].
    pub fn backend(backend: &'static str, message: impl Into<String>) -> Self {
        Error::Backend {
            backend,
            message: message.into(),
        }
    }

    /// [`Error::ActorDead`] for the actor `id` of type `class`, in the one wording every backend
    /// uses: `actor Class#id is not alive: <reason>`.
    pub fn actor_dead(class: &str, id: impl std::fmt::Display, reason: DeadReason) -> Self {
        Error::ActorDead {
            actor: format!("{class}#{id}"),
            reason: reason.to_string(),
        }
    }

    /// [`Error::ActorDead`] for an actor id the backend does not know, so it cannot name the
    /// type; [`RawActorHandle`](crate::RawActorHandle), which knows the type, replaces this error
    /// with one from [`Error::actor_dead`] before the user sees it.
    pub fn unknown_actor(id: impl std::fmt::Display) -> Self {
        Error::ActorDead {
            actor: format!("actor {id}"),
            reason: DeadReason::Unknown.to_string(),
        }
    }

    /// Names the type `class` in an [`Error::ActorDead`] about actor `id` that was raised by
    /// code that knew only the id ([`Error::unknown_actor`]); any other error is returned as it
    /// is.
    pub fn naming_actor_class(self, class: &str, id: impl std::fmt::Display) -> Self {
        match self {
            Error::ActorDead { actor, reason } if !actor.contains('#') => Error::ActorDead {
                actor: format!("{class}#{id}"),
                reason,
            },
            other => other,
        }
    }

    /// The form in which this error crosses a process boundary.
    pub fn to_remote(&self) -> (ErrorKind, String) {
        (self.kind(), self.to_string())
    }
}

impl From<ConfigError> for Error {
    fn from(e: ConfigError) -> Self {
        Error::Config(Arc::new(e))
    }
}

impl From<SerializeError> for Error {
    fn from(e: SerializeError) -> Self {
        Error::Serialize(Arc::new(e))
    }
}

impl From<TaskError> for Error {
    fn from(e: TaskError) -> Self {
        Error::Task(Arc::new(e))
    }
}

/// Why an actor no longer serves calls; the `reason` of [`Error::ActorDead`].
///
/// It is plain data so that a backend can keep it for a dead actor and send it to other
/// processes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[non_exhaustive]
pub enum DeadReason {
    /// `kill` ended it (also when the call was queued or running at that moment).
    #[error("it was killed")]
    Killed,
    /// Its last handle was dropped, so it ended after its queued calls.
    #[error("all its handles were dropped")]
    Released,
    /// The backend does not know the id: its last handle was dropped, or it belongs to another
    /// runtime.
    #[error(
        "it is not known to this runtime (its last handle was dropped, or it belongs to another \
         runtime)"
    )]
    Unknown,
    /// The thread that ran it ended without a kill or a release (the runtime is stopping).
    #[error("its thread ended")]
    ThreadEnded,
    /// The process that ran it is lost.
    #[error("its worker rank {rank} was lost ({why})")]
    WorkerLost {
        /// The rank of the lost process.
        rank: u32,
        /// How it was lost.
        why: String,
    },
    /// The process that created it, which knows where it lives, is lost.
    #[error("its owner rank {rank} was lost ({why})")]
    OwnerLost {
        /// The rank of the lost process.
        rank: u32,
        /// How it was lost.
        why: String,
    },
    /// The process that ran it is lost, and it had been created again (`max_restarts`) as
    /// many times as it may be.
    #[error("its worker rank {rank} was lost ({why}) and its restarts ran out (max_restarts {restarts})")]
    RestartsExhausted {
        /// The rank of the lost process.
        rank: u32,
        /// How it was lost.
        why: String,
        /// The restarts it was allowed, all used.
        restarts: u32,
    },
    /// It does not exist on the process its calls went to.
    #[error("it was never created on its worker ({why})")]
    NotCreated {
        /// Why not (its thread could not start, ...).
        why: String,
    },
}

/// Why a task produced no value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub enum TaskFailure {
    /// The body panicked.
    Panicked,
    /// An argument could not be resolved: the task that produced it failed, or it could not be
    /// decoded; the body did not run.
    ArgumentFailed,
    /// The runtime could not run it (its worker or actor is gone).
    Lost,
}

/// The error value stored for every output of a failed task or actor method.
///
/// It is plain data so that it can cross process boundaries unchanged.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[error("{}", self.render())]
pub struct TaskError {
    /// The function or method, as `module::name` or `Type::method`.
    pub function: String,
    /// What happened.
    pub failure: TaskFailure,
    /// The panic message, or the description of the failed argument.
    pub message: String,
}

impl TaskError {
    /// A task error for `function`.
    pub fn new(
        function: impl Into<String>,
        failure: TaskFailure,
        message: impl Into<String>,
    ) -> Self {
        TaskError {
            function: function.into(),
            failure,
            message: message.into(),
        }
    }

    fn render(&self) -> String {
        match self.failure {
            TaskFailure::Panicked => format!("task {} panicked: {}", self.function, self.message),
            TaskFailure::ArgumentFailed => {
                format!("task {} did not run: {}", self.function, self.message)
            }
            TaskFailure::Lost => format!("task {} was lost: {}", self.function, self.message),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn task_error_names_function_and_message() {
        let e = Error::from(TaskError::new(
            "app::div",
            TaskFailure::Panicked,
            "attempt to divide by zero",
        ));
        assert_eq!(e.kind(), ErrorKind::TaskFailed);
        let text = e.to_string();
        assert!(text.contains("app::div"), "{text}");
        assert!(text.contains("attempt to divide by zero"), "{text}");
        assert_eq!(
            e.task_error().map(|t| t.failure),
            Some(TaskFailure::Panicked)
        );
    }

    #[test]
    fn actor_dead_names_class_id_and_reason() {
        let e = Error::actor_dead("app::Counter", "0:7", DeadReason::Killed);
        assert_eq!(e.kind(), ErrorKind::ActorDead);
        assert_eq!(
            e.to_string(),
            "actor app::Counter#0:7 is not alive: it was killed"
        );
        let lost = Error::actor_dead(
            "app::Counter",
            "1:2",
            DeadReason::WorkerLost {
                rank: 1,
                why: "its process ended".into(),
            },
        );
        assert!(lost.to_string().contains("rank 1 was lost"), "{lost}");
        let unknown = Error::unknown_actor("0:3").naming_actor_class("app::Counter", "0:3");
        assert_eq!(
            unknown.to_string(),
            format!(
                "actor app::Counter#0:3 is not alive: {}",
                DeadReason::Unknown
            )
        );
        // An error that names its type already is kept.
        let kept = e.clone().naming_actor_class("other::Type", "0:7");
        assert_eq!(kept.to_string(), e.to_string());
    }

    #[test]
    fn remote_error_keeps_kind() {
        let (kind, message) = Error::Timeout {
            what: "object".into(),
            after: Duration::from_millis(5),
        }
        .to_remote();
        let e = Error::Remote { kind, message };
        assert_eq!(e.kind(), ErrorKind::Timeout);
        assert!(e.to_string().contains("not ready after"));
    }

    #[test]
    fn invalid_argument_message_has_value_and_range() {
        let e = Error::invalid("num_returns", 7, "at most 3 (the number of refs)");
        assert_eq!(e.kind(), ErrorKind::InvalidArgument);
        assert_eq!(
            e.to_string(),
            "invalid num_returns 7: expected at most 3 (the number of refs)"
        );
    }
}
