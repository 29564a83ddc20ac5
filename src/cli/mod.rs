//! The `tocsin` command line.

mod audit;
mod backup;
mod cases;
mod check;
pub mod client;
mod docs;
mod init;
mod oncall;
mod queue;
mod report;
mod run;
mod silence;
mod status;
mod template;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};

#[derive(Parser, Debug)]
#[command(name = "tocsin", version, about = "Live-site incident alerting engine")]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
    /// Show times in UTC instead of the local zone ($TZ, else the system's).
    #[arg(long, global = true)]
    pub utc: bool,
}

const DEFAULT_CONFIG: &str = "config/tocsin.yaml";

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Run the engine.
    Run {
        #[arg(long, short, default_value = DEFAULT_CONFIG)]
        config: PathBuf,
        /// Listen here instead of server.listen (e.g. 127.0.0.1:0 for any free port).
        #[arg(long)]
        listen: Option<String>,
    },
    /// Validate the config and every rule file; print each error as file:line:column.
    Check {
        #[arg(long, short, default_value = DEFAULT_CONFIG)]
        config: PathBuf,
        /// Also say whether the config's store needs migrating (read-only: it changes
        /// nothing, and it may run beside the engine).
        #[arg(long)]
        store: bool,
    },
    /// Run rule unit tests: timed signals in, expected incidents out (see docs/rules.md).
    Test {
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
    /// Feed recorded signals (JSON lines) through the rules on a simulated clock and print
    /// the incidents and pages that would have happened.
    Replay {
        #[arg(long, short, default_value = DEFAULT_CONFIG)]
        config: PathBuf,
        signals: PathBuf,
    },
    /// Work with incidents through the HTTP API.
    Incidents {
        // Boxed: its variants carry many flags, the other commands few.
        #[command(subcommand)]
        command: Box<client::IncidentsCommand>,
    },
    /// The audit log: `list` shows its entries through the API, `verify` walks its HMAC
    /// chain with the audit key.
    Audit {
        #[command(subcommand)]
        command: AuditCommand,
    },
    /// Copy a running engine's SQLite store into one file, through its API.
    Backup(backup::BackupArgs),
    /// Put a backup in place of the config's store; the engine must be stopped.
    Restore(backup::RestoreArgs),
    /// Write a commented starter config, the default rules and a rule unit test into DIR
    /// (made if missing); nothing is overwritten.
    Init { dir: PathBuf },
    /// Print shell completions (bash, zsh, fish, elvish, powershell) to stdout.
    Completions { shell: clap_complete::Shell },
    /// Write the man pages (tocsin.1 and one per command) into DIR.
    Man { dir: PathBuf },
    /// Notifier templates.
    Template {
        #[command(subcommand)]
        command: TemplateCommand,
    },
    /// Work with support cases (service requests) through the HTTP API.
    Cases {
        #[command(subcommand)]
        command: cases::CasesCommand,
    },
    /// Work a triage queue through the HTTP API.
    Queue {
        #[command(subcommand)]
        command: queue::QueueCommand,
    },
    /// Silences made at run time: add, list, expire (through the HTTP API).
    Silence {
        #[command(subcommand)]
        command: silence::SilenceCommand,
    },
    /// Who is on call now (or at --at) in every schedule, as the engine answers; and the
    /// overrides made at run time.
    Oncall {
        #[command(subcommand)]
        command: Option<oncall::OncallCommand>,
        /// An RFC 3339 time, e.g. 2026-03-08T09:00:00-05:00.
        #[arg(long)]
        at: Option<String>,
        #[command(flatten)]
        api: ApiArgs,
    },
    /// Reports over a time range: `sr` (SR deadlines and cadence, MTTA/MTTR, pager load).
    Report {
        #[command(subcommand)]
        command: report::ReportCommand,
    },
    /// The link of CUSTOMER's status page (its open incidents and support cases, signed
    /// for that customer alone), to give to the customer.
    StatusLink {
        /// A customer id of the catalog.
        customer: String,
        #[command(flatten)]
        api: ApiArgs,
    },
    /// Send a test page over each channel of RESPONDER and report each delivery.
    TestPage {
        responder: String,
        #[command(flatten)]
        api: ApiArgs,
    },
}

#[derive(Subcommand, Debug)]
pub enum AuditCommand {
    /// Who changed what, when and from where, newest first.
    List {
        /// Entries per page (default 100).
        #[arg(long)]
        limit: Option<u32>,
        /// The page after the one whose last line said `--cursor N`.
        #[arg(long)]
        cursor: Option<String>,
        #[command(flatten)]
        api: ApiArgs,
    },
    /// Say whether every entry's MAC holds (exit 0, with the count) or which entry first
    /// breaks the chain (exit 1).
    Verify {
        #[arg(long, short, default_value = DEFAULT_CONFIG)]
        config: PathBuf,
    },
}

#[derive(Subcommand, Debug)]
pub enum TemplateCommand {
    /// Print what a notifier would send for a page (nothing is sent).
    Render {
        #[arg(long, short, default_value = DEFAULT_CONFIG)]
        config: PathBuf,
        /// `email`, or the name of a webhook in notifiers.webhooks.
        #[arg(long)]
        notifier: String,
        /// An incident of the running engine (read through its API).
        #[arg(long, conflicts_with = "sample")]
        incident: Option<i64>,
        /// A sample incident (the default).
        #[arg(long)]
        sample: bool,
        /// The page's event: triggered (default), escalated, severity_raised,
        /// acknowledged, resolved, response_breached, impact_added, merged, reopened,
        /// assigned or responder_added.
        #[arg(long)]
        event: Option<String>,
        #[command(flatten)]
        api: ApiArgs,
    },
}

/// Flags every API client command takes.
#[derive(Args, Debug, Clone)]
pub struct ApiArgs {
    /// The engine's base URL.
    #[arg(long, env = "TOCSIN_URL", default_value = "http://127.0.0.1:9470")]
    pub url: String,
    /// Bearer token (or TOCSIN_TOKEN).
    #[arg(long, env = "TOCSIN_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// table for people, json for scripts.
    #[arg(long, short, default_value = "table", value_parser = ["table", "json"])]
    pub output: String,
}

pub fn init_logging() {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_env("TOCSIN_LOG").unwrap_or_else(|_| EnvFilter::new("info"));
    use std::io::IsTerminal;
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(false)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .init();
}

pub fn main() -> ExitCode {
    let cli = Cli::parse();
    crate::output::choose_times(cli.utc);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("tocsin: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let code = runtime.block_on(dispatch(cli.command));
    // Whatever is left (an engine stopped at once by a second signal, a thread blocked in a
    // write) ends with the process, not waited for.
    runtime.shutdown_background();
    code
}

async fn dispatch(command: Command) -> ExitCode {
    match command {
        Command::Run { config, listen } => {
            init_logging();
            let mut options = crate::app::Options::new(config);
            options.listen = listen;
            match run::run(options).await {
                Ok(()) => ExitCode::SUCCESS,
                // One line on stderr, which is also where the log goes.
                Err(e) => {
                    eprintln!("tocsin: {e:#}");
                    ExitCode::FAILURE
                }
            }
        }
        Command::Check { config, store } => check::run(&config, store).await,
        Command::Test { files } => crate::sim::test_files::run(&files),
        Command::Replay { config, signals } => crate::sim::replay::run(&config, &signals),
        Command::Incidents { command } => client::run(*command).await,
        Command::Backup(args) => backup::backup(args).await,
        Command::Restore(args) => backup::restore(args).await,
        Command::Init { dir } => init::run(&dir),
        Command::Completions { shell } => docs::completions(shell),
        Command::Man { dir } => docs::man(&dir),
        Command::Silence { command } => silence::run(command).await,
        Command::Oncall { command, at, api } => oncall::run(command, at, api).await,
        Command::TestPage { responder, api } => oncall::test_page(&responder, &api).await,
        Command::Audit {
            command: AuditCommand::Verify { config },
        } => audit::verify(&config).await,
        Command::Audit {
            command: AuditCommand::List { limit, cursor, api },
        } => audit::list(limit, cursor, &api).await,
        Command::Template {
            command:
                TemplateCommand::Render {
                    config,
                    notifier,
                    incident,
                    sample: _,
                    event,
                    api,
                },
        } => {
            template::render(template::RenderArgs {
                config: &config,
                notifier: &notifier,
                incident,
                event: event.as_deref(),
                api: &api,
            })
            .await
        }
        Command::Cases { command } => cases::run(command).await,
        Command::Queue { command } => queue::run(command).await,
        Command::Report { command } => report::run(command).await,
        Command::StatusLink { customer, api } => status::link(&customer, &api).await,
    }
}
