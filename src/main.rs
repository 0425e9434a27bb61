use clap::Parser;

use imangor::cli::{self, Cli};

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let config = match cli.load_config() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("imangor: refusing to start: {e:#}");
            return std::process::ExitCode::from(2);
        }
    };
    imangor::telemetry::init(config.log_format);
    match cli::run(cli, config).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("imangor: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
