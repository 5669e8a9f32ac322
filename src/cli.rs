//! The subcommands other than `serve`.

use std::io::Read;

use crate::app::{AppState, api_service, spec::Spec};
use crate::auth::sessions::SessionError;
use crate::config::{Config, SuperuserArgs};
use crate::domain::{Email, Username};
use crate::store;

#[derive(Debug, thiserror::Error)]
pub enum CliError {
    #[error("{0}")]
    Invalid(String),
    #[error(transparent)]
    Start(#[from] crate::app::StartError),
    #[error("database: {0}")]
    Db(#[from] sea_orm::DbErr),
    #[error("reading the password: {0}")]
    Io(#[from] std::io::Error),
}

pub fn openapi(config: Config, yaml: bool) -> Result<String, CliError> {
    let state = AppState::offline(config)?;
    let spec = Spec::of(&api_service(&state));
    Ok(if yaml { spec.yaml() } else { spec.json() }.to_string())
}

pub async fn migrate(config: &Config) -> Result<(), CliError> {
    let db = store::connect(
        &config.database_url,
        1,
        std::time::Duration::from_secs(config.db_acquire_timeout),
    )
    .await?;
    store::migrate(&db).await?;
    db.close().await?;
    Ok(())
}

fn read_password(from_stdin: bool) -> Result<String, CliError> {
    if from_stdin {
        let mut input = String::new();
        std::io::stdin().read_to_string(&mut input)?;
        return Ok(input.trim_end_matches(['\r', '\n']).to_string());
    }
    let first = rpassword::prompt_password("Password: ")?;
    let second = rpassword::prompt_password("Password (again): ")?;
    if first != second {
        return Err(CliError::Invalid("passwords do not match".into()));
    }
    Ok(first)
}

/// Creates an administrator through the same rules as a registration.
pub async fn createsuperuser(mut config: Config, args: SuperuserArgs) -> Result<i64, CliError> {
    let username =
        Username::parse(&args.username).map_err(|e| CliError::Invalid(format!("username: {e}")))?;
    let email = Email::parse(&args.email).map_err(|e| CliError::Invalid(format!("email: {e}")))?;
    let password = read_password(args.password_stdin)?;
    config.db_max_connections = 2;
    let state = AppState::connect(config).await?;
    let created = state
        .sessions
        .register(None, username, email, password, true)
        .await
        .map_err(|e| match e {
            SessionError::Taken(fields) => {
                CliError::Invalid(format!("{} already taken", fields.join(" and ")))
            }
            SessionError::Invalid { field, message } => {
                CliError::Invalid(format!("{field}: {message}"))
            }
            other => CliError::Invalid(other.to_string()),
        })?;
    state.db.close().await?;
    Ok(created.id)
}
