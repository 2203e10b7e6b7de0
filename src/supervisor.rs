//! Owns every long-lived task. A task that ends or panics before shutdown takes the
//! process down: it logs which task and why, marks the server unready at once and
//! makes `serve` return an error (exit status 1), so Kubernetes restarts a server
//! that would otherwise keep answering from data that no longer updates.

use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use tokio::task::{Id, JoinSet};
use tokio_util::sync::CancellationToken;

#[derive(Debug, thiserror::Error)]
pub enum SupervisorError {
    #[error("task {task} ended unexpectedly")]
    Ended { task: &'static str },
    #[error("task {task} failed: {error}")]
    Failed { task: &'static str, error: String },
    #[error("task {task} panicked: {message}")]
    Panicked { task: &'static str, message: String },
}

/// Whether every supervised task is still running (read by `/readyz`).
#[derive(Clone, Debug)]
pub struct Alive(Arc<AtomicBool>);

impl Alive {
    pub fn get(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }
}

pub struct Supervisor {
    tasks: JoinSet<Result<(), String>>,
    names: HashMap<Id, &'static str>,
    alive: Arc<AtomicBool>,
    shutdown: CancellationToken,
    /// Test hook (`--test-panic-task`): this task panics a moment after it starts.
    doomed: Option<String>,
}

/// How long the tasks have to stop once one has failed.
const STOP_WITHIN: Duration = Duration::from_secs(3);

/// How long after its start a doomed task panics.
const DOOM_AFTER: Duration = Duration::from_secs(1);

impl Supervisor {
    pub fn new(shutdown: CancellationToken, doomed: Option<String>) -> Self {
        Self {
            tasks: JoinSet::new(),
            names: HashMap::new(),
            alive: Arc::new(AtomicBool::new(true)),
            shutdown,
            doomed,
        }
    }

    pub fn alive(&self) -> Alive {
        Alive(self.alive.clone())
    }

    /// Runs `task` until shutdown; it must not end before then.
    pub fn spawn<F, E>(&mut self, name: &'static str, task: F)
    where
        F: Future<Output = Result<(), E>> + Send + 'static,
        E: std::fmt::Display,
    {
        let doomed = self.doomed.as_deref() == Some(name);
        let handle = self.tasks.spawn(async move {
            if doomed {
                let _ = tokio::time::timeout(DOOM_AFTER, task).await;
                panic!("test hook: task {name} was told to panic");
            }
            task.await.map_err(|e| e.to_string())
        });
        self.names.insert(handle.id(), name);
    }

    /// Runs `work` on an OS thread of its own (with a single-threaded runtime for its
    /// async parts), supervised like a task: a thread that ends or panics before
    /// shutdown stops the process. For work that must never wait for a runtime worker.
    pub fn spawn_thread<F, E>(&mut self, name: &'static str, work: F)
    where
        F: FnOnce() -> Result<(), E> + Send + 'static,
        E: std::fmt::Display,
    {
        let (done, ended) = tokio::sync::oneshot::channel();
        let spawned = std::thread::Builder::new().name(name.into()).spawn(move || {
            let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(work));
            let _ = done.send(outcome.map(|r| r.map_err(|e| e.to_string())));
        });
        self.spawn(name, async move {
            if let Err(error) = spawned {
                return Err(format!("cannot start its thread: {error}"));
            }
            match ended.await {
                Ok(Ok(result)) => result,
                Ok(Err(payload)) => std::panic::resume_unwind(payload),
                Err(_) => Err("its thread ended without a word".to_owned()),
            }
        });
    }

    /// Waits for shutdown, or for the first task to end, which starts the shutdown.
    /// After shutdown, waits for the tasks to finish their own way out (the status
    /// writer releases its Lease); `main` bounds how long that may take.
    pub async fn run(mut self) -> Result<(), SupervisorError> {
        let failure = tokio::select! {
            biased;
            () = self.shutdown.cancelled() => None,
            // A task may finish its way out before this loop sees the shutdown.
            Some(ended) = self.tasks.join_next_with_id() => {
                let task = self.names.remove(&task_id(&ended)).unwrap_or("unknown");
                (!self.shutdown.is_cancelled()).then(|| failure(task, ended))
            }
        };
        self.alive.store(false, Ordering::Relaxed);
        if let Some(failure) = &failure {
            tracing::error!(error = %failure, "a supervised task stopped; shutting down");
            self.shutdown.cancel();
        }
        // A failure has no signal handler's deadline behind it: bound the way out here.
        let deadline = tokio::time::Instant::now() + STOP_WITHIN;
        loop {
            let ended = match tokio::time::timeout_at(deadline, self.tasks.join_next_with_id())
                .await
            {
                Ok(Some(ended)) => ended,
                Ok(None) => break,
                Err(_) => {
                    let stuck: Vec<&str> = self.names.values().copied().collect();
                    tracing::error!(?stuck, within = ?STOP_WITHIN, "tasks did not stop in time");
                    break;
                }
            };
            let task = self.names.remove(&task_id(&ended)).unwrap_or("unknown");
            if let Err(error) = ended
                && error.is_panic()
            {
                tracing::error!(task, "task panicked during shutdown");
            }
        }
        failure.map_or(Ok(()), Err)
    }
}

type Ended = Result<(Id, Result<(), String>), tokio::task::JoinError>;

fn task_id(ended: &Ended) -> Id {
    ended.as_ref().map_or_else(|e| e.id(), |(id, _)| *id)
}

fn failure(task: &'static str, ended: Ended) -> SupervisorError {
    match ended {
        Ok((_, Ok(()))) => SupervisorError::Ended { task },
        Ok((_, Err(error))) => SupervisorError::Failed { task, error },
        Err(error) => {
            let message = match error.try_into_panic() {
                Ok(payload) => panic_message(payload.as_ref()),
                Err(error) => error.to_string(),
            };
            SupervisorError::Panicked { task, message }
        }
    }
}

fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_owned()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "a non-text panic".into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_task_that_ends_early_stops_everything_and_says_which() {
        let shutdown = CancellationToken::new();
        let mut supervisor = Supervisor::new(shutdown.clone(), None);
        let alive = supervisor.alive();
        let token = shutdown.clone();
        supervisor.spawn("steady", async move {
            token.cancelled().await;
            Ok::<(), String>(())
        });
        supervisor.spawn("fragile", async { Err::<(), _>("watch stream closed") });
        let error = supervisor.run().await.unwrap_err();
        assert_eq!(error.to_string(), "task fragile failed: watch stream closed");
        assert!(shutdown.is_cancelled(), "the other tasks are told to stop");
        assert!(!alive.get());
    }

    #[tokio::test]
    async fn a_panic_is_reported_with_its_message() {
        let shutdown = CancellationToken::new();
        let mut supervisor = Supervisor::new(shutdown.clone(), Some("doomed".into()));
        supervisor.spawn("doomed", std::future::pending::<Result<(), String>>());
        let error = supervisor.run().await.unwrap_err();
        assert!(matches!(error, SupervisorError::Panicked { task: "doomed", .. }), "{error}");
        assert!(error.to_string().contains("told to panic"), "{error}");
    }

    #[tokio::test]
    async fn a_thread_that_panics_is_a_failure_too() {
        let shutdown = CancellationToken::new();
        let mut supervisor = Supervisor::new(shutdown.clone(), None);
        supervisor.spawn_thread("worker", || -> Result<(), String> { panic!("out of luck") });
        let error = supervisor.run().await.unwrap_err();
        assert_eq!(error.to_string(), "task worker panicked: out of luck");
    }

    #[tokio::test]
    async fn shutdown_is_not_a_failure() {
        let shutdown = CancellationToken::new();
        let mut supervisor = Supervisor::new(shutdown.clone(), None);
        let token = shutdown.clone();
        supervisor.spawn("steady", async move {
            token.cancelled().await;
            Ok::<(), String>(())
        });
        shutdown.cancel();
        supervisor.run().await.unwrap();
    }
}
