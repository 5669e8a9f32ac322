//! The subcommands other than `serve`.

use std::io::Read;

use crate::auth::password::check_strength;
use crate::config::{Config, SuperuserArgs};
use crate::domain::{check_email, check_username};
use crate::startup::{AppState, api_service};
use crate::store::{self, users};

#[derive(Debug, thiserror::Error)]
pub enum CliError {
    #[error("{0}")]
    Invalid(String),
    #[error(transparent)]
    Start(#[from] crate::startup::StartError),
    #[error("database: {0}")]
    Db(#[from] sea_orm::DbErr),
    #[error("reading the password: {0}")]
    Io(#[from] std::io::Error),
}

pub fn openapi(config: Config, yaml: bool) -> Result<String, CliError> {
    let state = AppState::offline(config)?;
    let service = api_service(&state);
    Ok(if yaml {
        service.spec_yaml()
    } else {
        service.spec()
    })
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

pub async fn createsuperuser(mut config: Config, args: SuperuserArgs) -> Result<i64, CliError> {
    let username = args.username.trim().to_string();
    let email = args.email.trim().to_string();
    check_username(&username).map_err(|e| CliError::Invalid(format!("username: {e}")))?;
    check_email(&email).map_err(|e| CliError::Invalid(format!("email: {e}")))?;
    let password = read_password(args.password_stdin)?;
    check_strength(&password, &[&username, &email])
        .map_err(|e| CliError::Invalid(format!("password: {e}")))?;
    config.db_max_connections = 2;
    let state = AppState::connect(config).await?;
    let taken = users::taken_fields(&state.db, &username, &email).await?;
    if !taken.is_empty() {
        return Err(CliError::Invalid(format!(
            "{} already taken",
            taken.join(" and ")
        )));
    }
    let password_hash = state
        .hasher
        .hash(password)
        .await
        .map_err(|e| CliError::Invalid(e.to_string()))?;
    let user = users::create(
        &state.db,
        users::NewUser {
            username,
            email,
            password_hash,
            is_staff: true,
        },
    )
    .await
    .map_err(|e| CliError::Invalid(e.to_string()))?;
    state.db.close().await?;
    Ok(user.id)
}
