use std::process::ExitCode;

use clap::Parser;
use healthcare::app::{AppState, serve};
use healthcare::config::{Cli, Command};
use healthcare::{cli, telemetry};

fn parse_cli() -> Result<Cli, ExitCode> {
    // A `.env` file is optional; real environment variables win over it.
    let _ = dotenvy::dotenv();
    Cli::try_parse().map_err(|err| {
        use clap::error::ErrorKind;
        match err.kind() {
            ErrorKind::DisplayHelp
            | ErrorKind::DisplayVersion
            | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand => {
                let _ = err.print();
                ExitCode::SUCCESS
            }
            _ => {
                // One line naming the variable, not clap's usage block.
                let text = err.to_string();
                let first = text.lines().next().unwrap_or("invalid configuration");
                eprintln!("{first}");
                ExitCode::from(2)
            }
        }
    })
}

/// Argon2id allocates 19 MiB per hash. glibc raises its mmap threshold once
/// such a block is freed and then serves later ones from per-thread arenas,
/// so every blocking thread that ever hashed would pin 19 MiB for good. A
/// fixed threshold keeps large blocks in mmap, returned to the system as soon
/// as the hash ends; two arenas are plenty for a server on a few cores.
fn tune_allocator() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only sets allocator parameters; it is called before
    // any other thread exists.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 1 << 20);
        libc::mallopt(libc::M_ARENA_MAX, 2);
    }
}

/// Freed heap memory stays with the process until trimmed; a busy server
/// frees a lot between bursts, so hand it back every few seconds.
fn trim_allocator_periodically() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    tokio::spawn(async {
        let mut tick = tokio::time::interval(std::time::Duration::from_secs(5));
        loop {
            tick.tick().await;
            // SAFETY: malloc_trim only returns free memory to the system.
            unsafe {
                libc::malloc_trim(0);
            }
        }
    });
}

fn main() -> ExitCode {
    tune_allocator();
    match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime.block_on(async {
            trim_allocator_periodically();
            run().await
        }),
        Err(err) => {
            eprintln!("error: cannot start the async runtime: {err}");
            ExitCode::FAILURE
        }
    }
}

async fn run() -> ExitCode {
    let cli = match parse_cli() {
        Ok(cli) => cli,
        Err(code) => return code,
    };
    if let Err(err) = cli.config.validate() {
        eprintln!("error: {err}");
        return ExitCode::from(2);
    }
    // Held until main returns: dropping it writes out the queued log lines.
    let _log_writer = telemetry::init(cli.config.log_format, &cli.config.rust_log);
    if cli.config.password_min_strength < 3 {
        tracing::warn!(
            strength = cli.config.password_min_strength,
            "PASSWORD_MIN_STRENGTH is below 3: guessable passwords are accepted; \
             use this only to replay fixtures in a test environment"
        );
    }
    let result = match cli.command.unwrap_or(Command::Serve) {
        Command::Serve => match AppState::connect(cli.config).await {
            Ok(state) => serve(state).await.map_err(cli::CliError::from),
            Err(err) => Err(err.into()),
        },
        Command::Migrate => cli::migrate(&cli.config).await.map(|()| {
            tracing::info!("migrations applied");
        }),
        Command::Createsuperuser(args) => cli::createsuperuser(cli.config, args).await.map(|id| {
            println!("Superuser created with id {id}.");
        }),
        Command::Openapi { yaml } => cli::openapi(cli.config, yaml).map(|spec| {
            use std::io::Write;
            // A closed pipe (`healthcare openapi | head`) is not an error.
            let _ = writeln!(std::io::stdout().lock(), "{spec}");
        }),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err}");
            ExitCode::FAILURE
        }
    }
}
