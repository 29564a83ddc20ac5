//! `tocsin run`: the engine until Ctrl-C or SIGTERM; SIGHUP reloads.

use anyhow::{Context, Result};

use crate::app::{start, Options};

/// `tocsin run`: start, then wait for Ctrl-C (SIGINT) or SIGTERM; SIGHUP reloads.
///
/// Either signal stops the engine once, whenever it comes. During start-up the start is
/// given up where it is: nothing has been paged yet, and what it did (the port bound, the
/// store opened, migrated or read) is undone by closing it, a migration by its transaction.
/// After start-up the engine drains (`Running::stop`); a second signal while it drains ends
/// the process at once, as an error.
pub async fn run(options: Options) -> Result<()> {
    // Installed before anything else: a signal during start-up must not kill the process
    // (the default action of all three) but stop it, and a SIGHUP then is a reload to come.
    let mut signals = Signals::install()?;
    let running = tokio::select! {
        started = start(options) => started?,
        name = signals.stop() => {
            tracing::info!("{name} during start-up: stopping");
            tracing::info!("stopped cleanly");
            return Ok(());
        }
    };
    let reload = running.state.reload.clone();
    let name = loop {
        match signals.next().await {
            Signal::Stop(name) => break name,
            Signal::Reload => {
                tracing::info!("SIGHUP: reloading the config");
                let (tx, rx) = tokio::sync::oneshot::channel();
                if reload.send(tx).await.is_ok() {
                    // A reload done is a change: audited, by the signal (no person, no address).
                    if let Ok(Ok(())) = rx.await {
                        let caller = crate::api::auth::Caller::of(None, String::new());
                        let state = &running.state;
                        let recorded = crate::api::audit::record(
                            state, &caller, "SIGHUP", "reload", "config", "reloaded",
                        );
                        if let Err(e) = recorded.await {
                            tracing::error!(error = %e.message, "the reload's audit entry");
                        }
                    }
                }
            }
        }
    };
    tracing::info!("{name}: shutting down (a second signal stops at once)");
    crate::engine::watchdog::notify_systemd(sd_notify::NotifyState::Stopping);
    tokio::select! {
        () = async { running.stop().await; } => {}
        again = signals.stop() => anyhow::bail!(
            "{again} while shutting down: stopped at once; pages in flight may go out again \
             after the next start, with the same X-Tocsin-Delivery"
        ),
    }
    tracing::info!("stopped cleanly");
    Ok(())
}

/// The signals `tocsin run` answers.
struct Signals {
    interrupt: tokio::signal::unix::Signal,
    terminate: tokio::signal::unix::Signal,
    hangup: tokio::signal::unix::Signal,
}

impl Signals {
    fn install() -> Result<Signals> {
        use tokio::signal::unix::{signal, SignalKind};
        Ok(Signals {
            interrupt: signal(SignalKind::interrupt()).context("cannot handle SIGINT")?,
            terminate: signal(SignalKind::terminate()).context("cannot handle SIGTERM")?,
            hangup: signal(SignalKind::hangup()).context("cannot handle SIGHUP")?,
        })
    }

    /// The next SIGINT or SIGTERM, by name; a SIGHUP meanwhile waits for [`Signals::next`].
    async fn stop(&mut self) -> &'static str {
        tokio::select! {
            _ = self.interrupt.recv() => "SIGINT",
            _ = self.terminate.recv() => "SIGTERM",
        }
    }

    async fn next(&mut self) -> Signal {
        tokio::select! {
            _ = self.interrupt.recv() => Signal::Stop("SIGINT"),
            _ = self.terminate.recv() => Signal::Stop("SIGTERM"),
            _ = self.hangup.recv() => Signal::Reload,
        }
    }
}

enum Signal {
    Stop(&'static str),
    Reload,
}
