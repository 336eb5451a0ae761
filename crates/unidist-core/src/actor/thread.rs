//! [`ActorThread`]: one OS thread with a single-threaded Tokio runtime that builds an actor and
//! serves its calls, starting them in call order and letting `async fn` calls run concurrently.
//!
//! An actor type is only `Send` (it need not be `Sync`) and an `async fn` call is a future tied
//! to the thread that created it, so a backend without an event loop of its own gives each actor
//! this thread. The backend decides what a call carries besides its method and arguments through
//! [`CallHooks`]: where the result goes, and the context each poll of user code runs in.

use std::future::{poll_fn, Future};
use std::pin::{pin, Pin};
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};

use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinSet;

use super::instance::{ActorInstance, CallResult, LocalBoxFuture};
use crate::error::{TaskError, TaskFailure};
use crate::registry::{ActorClassEntry, ActorMethodEntry};
use crate::value::Payload;

/// What a backend attaches to each message for an actor thread.
pub trait CallHooks: Send + 'static {
    /// Whether the actor thread, idle between calls, polls for the next call for
    /// [`spin::WINDOW`](crate::spin::WINDOW) even when the machine has no core to spare
    /// ([`spin::spin_for`](crate::spin::spin_for) skips polling then). A backend whose own
    /// threads poll by yielding (MPI's communication threads, which make every core look busy)
    /// sets it, as its task threads poll unconditionally too.
    const POLL_WHEN_BUSY: bool = false;

    /// Runs `f` (the constructor, or one poll of a call's user code) in this call's context;
    /// by default it runs `f` as it is.
    fn scope<R>(&mut self, f: impl FnOnce() -> R) -> R {
        f()
    }

    /// Receives the call's result (for a constructor: no outputs, or its error).
    ///
    /// When the actor ends first (it is killed, or its thread could not start), the hooks are
    /// dropped without this call; a backend that must answer every call does it in `Drop`.
    fn finish(self, result: CallResult);
}

/// A message for an actor thread.
pub enum ActorMessage<H> {
    /// Build the actor; the first message of every actor thread.
    Construct {
        /// The actor type.
        class: &'static ActorClassEntry,
        /// The resolved arguments of its constructor, or the error that fails it
        /// ([`resolve_args`](crate::call::resolve_args)).
        args: Result<Vec<Payload>, TaskError>,
        /// Where the outcome goes.
        hooks: H,
    },
    /// Call a method.
    Call {
        /// The method.
        method: &'static ActorMethodEntry,
        /// The resolved arguments, or the error that fails the call without running it. A
        /// failed constructor takes precedence: every call then gets the constructor's error.
        args: Result<Vec<Payload>, TaskError>,
        /// Where the result goes.
        hooks: H,
    },
}

/// The backend's end of a running actor thread.
///
/// Dropping it releases the actor: once every [`ActorSender`] is gone too, the thread runs the
/// calls already queued, waits for its running `async fn` calls, and ends.
pub struct ActorThread<H> {
    messages: mpsc::UnboundedSender<ActorMessage<H>>,
    kill: Option<oneshot::Sender<()>>,
    /// Set by `kill` before it signals: a thread polling its queue for the next call (see
    /// `serve`) does not reach the await point where the signal is seen, so it checks this
    /// before it runs what it took.
    killed: Arc<AtomicBool>,
}

/// A cloneable sender of messages to an actor thread; it keeps the thread serving.
pub struct ActorSender<H> {
    messages: mpsc::UnboundedSender<ActorMessage<H>>,
}

impl<H> Clone for ActorSender<H> {
    fn clone(&self) -> Self {
        ActorSender {
            messages: self.messages.clone(),
        }
    }
}

impl<H: CallHooks> ActorSender<H> {
    /// Queues a message; gives it back if the thread has ended.
    pub fn send(&self, message: ActorMessage<H>) -> Result<(), ActorMessage<H>> {
        self.messages.send(message).map_err(|e| e.0)
    }
}

impl<H: CallHooks> ActorThread<H> {
    /// Starts a thread called `name`, which first runs `on_start` (to set thread-local state of
    /// the backend), then serves the messages sent to it. Send [`ActorMessage::Construct`] first.
    pub fn spawn(name: String, on_start: impl FnOnce() + Send + 'static) -> std::io::Result<Self> {
        let (messages, queue) = mpsc::unbounded_channel();
        let (kill, killed) = oneshot::channel();
        let flag = Arc::new(AtomicBool::new(false));
        let seen = flag.clone();
        std::thread::Builder::new().name(name).spawn(move || {
            on_start();
            thread_main(queue, killed, seen);
        })?;
        Ok(ActorThread {
            messages,
            kill: Some(kill),
            killed: flag,
        })
    }

    /// Queues a message; gives it back if the thread has ended.
    pub fn send(&self, message: ActorMessage<H>) -> Result<(), ActorMessage<H>> {
        self.messages.send(message).map_err(|e| e.0)
    }

    /// A sender to queue messages without holding this handle.
    pub fn sender(&self) -> ActorSender<H> {
        ActorSender {
            messages: self.messages.clone(),
        }
    }

    /// Ends the actor at its next await point: the hooks of queued calls and of `async fn` calls
    /// in progress are dropped without a result. A sync method that is running finishes first.
    pub fn kill(mut self) {
        self.killed.store(true, Ordering::Release);
        if let Some(k) = self.kill.take() {
            let _ = k.send(());
        }
    }
}

fn thread_main<H: CallHooks>(
    mut queue: mpsc::UnboundedReceiver<ActorMessage<H>>,
    killed: oneshot::Receiver<()>,
    flag: Arc<AtomicBool>,
) {
    // Timers, so that `tokio::time::sleep` works in async methods; no I/O driver, which would
    // cost file descriptors per actor.
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            tracing::error!(error = %e, "cannot start the async runtime of an actor thread");
            return;
        }
    };
    let local = tokio::task::LocalSet::new();
    local.block_on(&rt, serve_until_killed(&mut queue, killed, &flag));
    // Dropping the set drops the async calls still in progress (after a kill), then the queued
    // messages are dropped with the queue.
    drop(local);
    drop(queue);
}

async fn serve_until_killed<H: CallHooks>(
    queue: &mut mpsc::UnboundedReceiver<ActorMessage<H>>,
    mut killed: oneshot::Receiver<()>,
    flag: &AtomicBool,
) {
    let mut serving = pin!(serve(queue, flag));
    // The kill sender is also dropped, without sending, when the actor is released: it then
    // ends once its queue is empty, every sender is gone and its async calls have finished.
    let mut kill_open = true;
    poll_fn(|cx| {
        if kill_open {
            match Pin::new(&mut killed).poll(cx) {
                Poll::Ready(Ok(())) => return Poll::Ready(()),
                Poll::Ready(Err(_)) => kill_open = false,
                Poll::Pending => {}
            }
        }
        serving.as_mut().poll(cx)
    })
    .await
}

type Built = Option<Result<Rc<ActorInstance>, TaskError>>;

async fn serve<H: CallHooks>(
    queue: &mut mpsc::UnboundedReceiver<ActorMessage<H>>,
    killed: &AtomicBool,
) {
    let mut instance: Built = None;
    // Running `async fn` calls; finished ones are reaped as messages arrive.
    let mut running = JoinSet::new();
    loop {
        // With no async call to drive, the next call of a caller that waits for each one
        // usually comes within microseconds: wait for it awake rather than parking at once.
        let next = if running.is_empty() {
            let poll = || queue.try_recv().ok();
            if H::POLL_WHEN_BUSY {
                crate::spin::poll_for(crate::spin::WINDOW, poll)
            } else {
                crate::spin::spin_for(crate::spin::WINDOW, poll)
            }
        } else {
            None
        };
        let message = match next {
            Some(m) => m,
            None => match queue.recv().await {
                Some(m) => m,
                None => break,
            },
        };
        if killed.load(Ordering::Acquire) {
            // Killed while this thread polled its queue: what it took is not run (its hooks
            // report the actor's fate), nor is anything after it.
            drop(message);
            return;
        }
        while running.try_join_next().is_some() {}
        match message {
            ActorMessage::Construct { class, args, hooks } => {
                instance = Some(construct(class, args, hooks));
            }
            ActorMessage::Call {
                method,
                args,
                hooks,
            } => {
                let ready = match (&instance, args) {
                    (Some(Ok(inst)), Ok(args)) => Ok((inst.clone(), args)),
                    (Some(Ok(_)), Err(e)) => Err(e),
                    (Some(Err(e)), _) => Err(e.clone()),
                    (None, _) => Err(not_built(method)),
                };
                match ready {
                    Ok((inst, args)) => start_call(&mut running, inst, method, args, hooks).await,
                    Err(e) => hooks.finish(Err(e)),
                }
            }
        }
    }
    // Released: the async calls already started finish before the thread ends.
    while running.join_next().await.is_some() {}
}

fn construct<H: CallHooks>(
    class: &'static ActorClassEntry,
    args: Result<Vec<Payload>, TaskError>,
    mut hooks: H,
) -> Result<Rc<ActorInstance>, TaskError> {
    let built = args.and_then(|args| hooks.scope(|| ActorInstance::construct(class, args)));
    match &built {
        Ok(_) => hooks.finish(Ok(Vec::new())),
        Err(e) => {
            tracing::debug!(class = class.name, error = %e, "actor construction failed");
            hooks.finish(Err(e.clone()));
        }
    }
    built.map(Rc::new)
}

fn not_built(method: &'static ActorMethodEntry) -> TaskError {
    TaskError::new(
        method.name,
        TaskFailure::Lost,
        "the actor received a call before its constructor (the backend sent no Construct first)",
    )
}

/// Starts one call in call order: returns once it has started (a sync method has run by then);
/// an `async fn` continues on `running`, concurrently with the calls after it.
async fn start_call<H: CallHooks>(
    running: &mut JoinSet<()>,
    inst: Rc<ActorInstance>,
    method: &'static ActorMethodEntry,
    args: Vec<Payload>,
    mut hooks: H,
) {
    // `begin` resolves to the future that completes the call once the call has started.
    #[allow(clippy::async_yields_async)]
    let begin: LocalBoxFuture<LocalBoxFuture<CallResult>> =
        Box::pin(async move { inst.begin(method, args).await });
    let done = Scoped {
        hooks: &mut hooks,
        inner: begin,
    }
    .await;
    if method.kind.is_async() {
        running.spawn_local(async move {
            let result = Scoped {
                hooks: &mut hooks,
                inner: done,
            }
            .await;
            hooks.finish(result);
        });
    } else {
        // Answered here, not from a spawned task, so that a kill right after cannot lose the
        // result of a call that has run.
        let result = Scoped {
            hooks: &mut hooks,
            inner: done,
        }
        .await;
        hooks.finish(result);
    }
}

/// Runs every poll of `inner` inside the call's [`CallHooks::scope`]: the context belongs to a
/// call, not to the thread, which interleaves the polls of concurrent async calls.
struct Scoped<'h, H, F> {
    hooks: &'h mut H,
    inner: F,
}

impl<H: CallHooks, F: Future + Unpin> Future for Scoped<'_, H, F> {
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let this = self.get_mut();
        let inner = &mut this.inner;
        this.hooks.scope(|| Pin::new(inner).poll(cx))
    }
}

#[cfg(test)]
mod tests {
    use std::any::Any;
    use std::sync::mpsc::{channel, Sender};
    use std::time::Duration;

    use super::*;
    use crate::actor::ActorReadGuard;
    use crate::error::Result;
    use crate::registry::MethodKind;
    use crate::value::{output, Outputs};

    /// Sends the result to a channel; a dropped hook sends nothing, so the receiver sees it gone.
    struct Reply(Sender<CallResult>);

    impl CallHooks for Reply {
        fn finish(self, result: CallResult) {
            let _ = self.0.send(result);
        }
    }

    fn new(args: Vec<Payload>) -> Result<Box<dyn Any + Send>> {
        Ok(Box::new(args[0].take::<i64>()?))
    }
    static CLASS: ActorClassEntry = ActorClassEntry {
        name: "tests::Cell",
        construct: new,
    };

    fn add(state: &mut dyn Any, args: Vec<Payload>) -> Result<Outputs> {
        let n = state.downcast_mut::<i64>().expect("an i64");
        *n += args[0].take::<i64>()?;
        Ok(vec![output(*n)])
    }
    static ADD: ActorMethodEntry = ActorMethodEntry {
        name: "tests::Cell::add",
        class: "tests::Cell",
        num_returns: 1,
        kind: MethodKind::Mut(add),
    };

    fn get(state: &dyn Any, _: Vec<Payload>) -> Result<Outputs> {
        Ok(vec![output(*state.downcast_ref::<i64>().expect("an i64"))])
    }
    static GET: ActorMethodEntry = ActorMethodEntry {
        name: "tests::Cell::get",
        class: "tests::Cell",
        num_returns: 1,
        kind: MethodKind::Ref(get),
    };

    fn two(_: &dyn Any, _: Vec<Payload>) -> Result<Outputs> {
        Ok(vec![output(1u8), output(2u8)])
    }
    static TWO: ActorMethodEntry = ActorMethodEntry {
        name: "tests::Cell::two",
        class: "tests::Cell",
        num_returns: 1,
        kind: MethodKind::Ref(two),
    };

    fn sleepy(state: ActorReadGuard, args: Vec<Payload>) -> LocalBoxFuture<Result<Outputs>> {
        Box::pin(async move {
            let ms = args[0].take::<u64>()?;
            tokio::time::sleep(Duration::from_millis(ms)).await;
            Ok(vec![output(*state.downcast_ref::<i64>().expect("an i64"))])
        })
    }
    static SLEEPY: ActorMethodEntry = ActorMethodEntry {
        name: "tests::Cell::sleepy",
        class: "tests::Cell",
        num_returns: 1,
        kind: MethodKind::Async(sleepy),
    };

    fn call(
        t: &ActorThread<Reply>,
        method: &'static ActorMethodEntry,
        arg: Payload,
    ) -> std::sync::mpsc::Receiver<CallResult> {
        let (tx, rx) = channel();
        let sent = t.send(ActorMessage::Call {
            method,
            args: Ok(vec![arg]),
            hooks: Reply(tx),
        });
        assert!(sent.is_ok(), "the actor thread ended");
        rx
    }

    fn error(r: CallResult) -> TaskError {
        r.err().expect("the call fails")
    }

    fn value(r: CallResult) -> i64 {
        let outputs = r.expect("the call succeeds");
        *outputs[0].as_any().downcast_ref::<i64>().expect("an i64")
    }

    const LIMIT: Duration = Duration::from_secs(10);

    fn started(initial: i64) -> ActorThread<Reply> {
        let t = ActorThread::spawn("tests-actor".into(), || {}).expect("spawn");
        let (tx, rx) = channel();
        let sent = t.send(ActorMessage::Construct {
            class: &CLASS,
            args: Ok(vec![Payload::local(initial)]),
            hooks: Reply(tx),
        });
        assert!(sent.is_ok());
        assert!(rx.recv_timeout(LIMIT).unwrap().is_ok());
        t
    }

    #[test]
    fn calls_run_in_order_and_async_calls_concurrently() {
        let t = started(10);
        let slow = call(&t, &SLEEPY, Payload::local(200u64));
        let read = call(&t, &GET, Payload::local(()));
        let write = call(&t, &ADD, Payload::local(1i64));
        // A `&self` call after the sleeping async `&self` call is not held up by it; the
        // `&mut self` call after them waits for both.
        let quick = read.recv_timeout(Duration::from_millis(150)).unwrap();
        assert_eq!(value(quick), 10);
        assert_eq!(value(slow.recv_timeout(LIMIT).unwrap()), 10);
        assert_eq!(value(write.recv_timeout(LIMIT).unwrap()), 11);
        let wrong = call(&t, &TWO, Payload::local(()));
        let e = error(wrong.recv_timeout(LIMIT).unwrap());
        assert_eq!(e.function, "tests::Cell::two");
        assert!(e.message.contains("returned 2 values"), "{e}");
    }

    #[test]
    fn a_failed_constructor_or_argument_fails_the_call() {
        let t = ActorThread::spawn("tests-actor".into(), || {}).expect("spawn");
        let (tx, rx) = channel();
        let ctor_error = TaskError::new("tests::Cell", TaskFailure::Panicked, "no");
        let _ = t.send(ActorMessage::Construct {
            class: &CLASS,
            args: Err(ctor_error.clone()),
            hooks: Reply(tx),
        });
        assert_eq!(error(rx.recv_timeout(LIMIT).unwrap()), ctor_error);
        let r = call(&t, &ADD, Payload::local(1i64));
        assert_eq!(error(r.recv_timeout(LIMIT).unwrap()), ctor_error);

        let t = started(0);
        let (tx, rx) = channel();
        let arg_error = TaskError::new("tests::Cell::add", TaskFailure::ArgumentFailed, "x");
        let _ = t.send(ActorMessage::Call {
            method: &ADD,
            args: Err(arg_error.clone()),
            hooks: Reply(tx),
        });
        assert_eq!(error(rx.recv_timeout(LIMIT).unwrap()), arg_error);
    }

    #[test]
    fn kill_drops_calls_in_progress_and_release_lets_them_finish() {
        let t = started(5);
        let slow = call(&t, &SLEEPY, Payload::local(10_000u64));
        std::thread::sleep(Duration::from_millis(20));
        t.kill();
        // The hooks were dropped without a result.
        assert!(slow.recv_timeout(LIMIT).is_err());

        let t = started(6);
        let slow = call(&t, &SLEEPY, Payload::local(50u64));
        drop(t);
        assert_eq!(value(slow.recv_timeout(LIMIT).unwrap()), 6);
    }
}
