use std::sync::Arc;
use std::time::Duration;

use clap::Parser;
use failover_dns::config::{Cli, Command};
use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

/// The longest a shutdown may take before the process exits regardless (work stuck
/// outside the runtime's control, such as a blocking file read).
const SHUTDOWN_DEADLINE: Duration = Duration::from_secs(3);

failover_dns::install_allocator!();

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Crds => {
            print!("{}", failover_dns::crdgen::crds_yaml());
            Ok(())
        }
        Command::Check(args) => {
            let clean = failover_dns::cli::check::run(&args)?;
            std::process::exit(if clean { 0 } else { 1 });
        }
        Command::Explain(args) => {
            failover_dns::cli::explain::run(&args)?;
            Ok(())
        }
        Command::Serve(args) => {
            failover_dns::telemetry::init(args.log_format);
            raise_open_file_limit();
            let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
            let result = runtime.block_on(async move {
                let shutdown = CancellationToken::new();
                let reload = Arc::new(Notify::new());
                handle_signals(shutdown.clone(), reload.clone())?;
                failover_dns::serve::run(*args, shutdown, reload).await
            });
            // Blocking tasks still running must not hold the exit.
            runtime.shutdown_timeout(Duration::from_millis(200));
            result
        }
    }
}

/// Installs the handlers at once (a signal arriving before would take its default
/// action: death): SIGTERM and SIGINT start the shutdown (a second one exits at
/// once), SIGHUP re-reads the manifests, SIGQUIT, SIGUSR1 and SIGUSR2 are logged
/// and otherwise ignored.
fn handle_signals(shutdown: CancellationToken, reload: Arc<Notify>) -> std::io::Result<()> {
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    let mut hup = signal(SignalKind::hangup())?;
    let mut quit = signal(SignalKind::quit())?;
    let mut usr1 = signal(SignalKind::user_defined1())?;
    let mut usr2 = signal(SignalKind::user_defined2())?;
    tokio::spawn(async move {
        loop {
            let name = tokio::select! {
                _ = term.recv() => "SIGTERM",
                _ = int.recv() => "SIGINT",
                _ = hup.recv() => {
                    tracing::info!(signal = "SIGHUP", "re-reading the manifests");
                    reload.notify_one();
                    continue;
                }
                _ = quit.recv() => "SIGQUIT",
                _ = usr1.recv() => "SIGUSR1",
                _ = usr2.recv() => "SIGUSR2",
            };
            if !matches!(name, "SIGTERM" | "SIGINT") {
                tracing::info!(signal = name, "signal ignored");
                continue;
            }
            if shutdown.is_cancelled() {
                tracing::warn!(signal = name, "second termination signal: exiting now");
                std::process::exit(1);
            }
            tracing::info!(signal = name, "shutting down");
            shutdown.cancel();
            std::thread::spawn(|| {
                std::thread::sleep(SHUTDOWN_DEADLINE);
                tracing::error!(deadline = ?SHUTDOWN_DEADLINE, "shutdown did not finish in time: exiting now");
                std::process::exit(1);
            });
        }
    });
    Ok(())
}

/// Every kept-open probe connection and DNS-over-TCP client needs a descriptor: take
/// the hard limit instead of the usual soft 1024.
fn raise_open_file_limit() {
    let mut limit = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: getrlimit/setrlimit only read and write the struct passed in.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) == 0 && limit.rlim_cur < limit.rlim_max
        {
            limit.rlim_cur = limit.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &limit);
        }
    }
}
