use clap::Parser;

use imangor::cli::{self, Cli, Command};
use imangor::config::Config;
use imangor::startup::{self, App};

#[tokio::main]
async fn main() -> std::process::ExitCode {
    keep_memory_small();
    let cli = Cli::parse();
    // Checking an evidence bundle reads the file alone: no configuration is needed or read.
    if let Command::Evidence(cmd) = cli.command {
        return exit(cli::run_offline(cmd));
    }
    let config = match cli.load_config() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("imangor: refusing to start: {e:#}");
            return std::process::ExitCode::from(2);
        }
    };
    imangor::telemetry::init(config.log_format);
    let done = match cli.command {
        Command::Serve => serve(config).await,
        Command::Task(task) => cli::run(task, config).await,
        Command::Evidence(cmd) => cli::run_offline(cmd),
    };
    exit(done)
}

/// 0 when the command succeeded; its error and 1 otherwise.
fn exit(done: anyhow::Result<()>) -> std::process::ExitCode {
    match done {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("imangor: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

/// `imangor serve`: builds the application, then serves until SIGTERM or Ctrl-C.
async fn serve(config: Config) -> anyhow::Result<()> {
    let app = App::build(config).await?;
    app.run(startup::shutdown_signal()).await
}

/// glibc raises its mmap threshold after the first large block is freed, so later ones come from
/// (and stay in) the arena of whichever thread allocated them: with argon2's 19 MiB per hash the
/// resident size grew by 19 MiB per thread and never shrank. A fixed threshold keeps large
/// blocks in mmap, returned on free. (The hashing threads now keep one argon2 memory each, see
/// `auth::password`; this still bounds every other large allocation, such as a hash at start-up.)
fn keep_memory_small() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only sets a malloc tunable; it is called before the server allocates much
    // and has no memory-safety preconditions.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 128 * 1024);
    }
}
