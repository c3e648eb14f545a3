//! The commands: each parses nothing, validates nothing twice, and calls the crates.

use anyhow::{anyhow, bail, Context, Result};
use nbtoken_core::password::hash_password;
use nbtoken_core::{SecretString, TokenVersion};
use nbtoken_server::json::{self as api_json, BaseUrl};
use nbtoken_server::service::{create_token, TokenSpec};
use nbtoken_store::{
    NewUser, Page, SqliteStore, Store, TokenFilter, TokenPatch, User, UserFilter, UserPatch,
};
use serde_json::{json, Value};

use crate::cli::{Cli, Command, PepperCommand, TokenCommand, TokenCreateArgs, UserCommand};
use crate::output::{print_json, tokens_table, users_table};
use crate::settings::{read_password_stdin, PepperSource, Settings};

const ALL: Page = Page { limit: u32::MAX, offset: 0 };

/// Runs one command.
pub async fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Serve(args) => {
            let mut settings = Settings::load(&cli.global, args.bind.as_deref())?;
            serve(&mut settings).await
        }
        Command::Pepper(PepperCommand::Generate) => {
            let v = nbtoken_core::pepper::generate_value()?;
            println!("{}", v.expose());
            Ok(())
        }
        Command::User(cmd) => {
            let settings = Settings::load(&cli.global, None)?;
            let store = open_store(&settings).await?;
            user(&store, cmd).await
        }
        Command::Token(cmd) => {
            let settings = Settings::load(&cli.global, None)?;
            let store = open_store(&settings).await?;
            token(&settings, &store, cmd).await
        }
    }
}

async fn open_store(settings: &Settings) -> Result<SqliteStore> {
    if settings.database_url.starts_with("sqlite:") {
        settings.ensure_data_dir()?;
    }
    SqliteStore::connect(&settings.database_url).await.with_context(|| "cannot open the database".to_owned())
}

async fn serve(settings: &mut Settings) -> Result<()> {
    let store = open_store(settings).await?;
    if settings.pepper_source == PepperSource::Missing {
        let path = settings.generate_pepper_file()?;
        tracing::warn!(
            path = %path.display(),
            "no peppers configured: generated one into the data directory; production should inject peppers with NBTOKEN_PEPPER_<ID>"
        );
    }
    let (count, _) = store.list_users(&UserFilter::default(), Page { limit: 1, offset: 0 }).await?;
    if count == 0 {
        bootstrap_admin(settings, &store).await?;
    }
    nbtoken_server::run(settings.server_config(), store, nbtoken_server::shutdown_signal()).await
}

/// First start: an `admin` superuser with a random password and a first v2 token, printed once.
async fn bootstrap_admin(settings: &Settings, store: &SqliteStore) -> Result<()> {
    let password = nbtoken_core::pepper::generate_value()?;
    let short = SecretString::from(&password.expose()[..24]);
    let hash = hash_password(short.expose()).map_err(|e| anyhow!("{e}"))?;
    let admin = store
        .create_user(NewUser {
            username: "admin".into(),
            password_hash: Some(hash),
            is_active: true,
            is_superuser: true,
            can_grant_tokens: true,
            ..Default::default()
        })
        .await?;
    let created = create_token(
        store,
        &settings.peppers,
        settings.v1_policy,
        admin.id,
        TokenSpec { description: "created on first start".into(), ..Default::default() },
    )
    .await?;
    println!("First start: created superuser 'admin'. These are shown once; store them now.");
    println!("  password: {}", short.expose());
    println!("  token:    {}", created.token.expose());
    println!(
        "Try: curl -H \"Authorization: Bearer {}\" http://{}/api/users/tokens/",
        created.token.expose(),
        settings.bind
    );
    Ok(())
}

async fn find_user(store: &SqliteStore, name: &str) -> Result<User> {
    store.user_by_name(name).await?.ok_or_else(|| anyhow!("no user named {name:?}"))
}

fn base(settings: Option<&Settings>) -> BaseUrl {
    BaseUrl::new(format!(
        "http://{}",
        settings.map(|s| s.bind.to_string()).unwrap_or_else(|| "127.0.0.1:8080".into())
    ))
}

async fn user(store: &SqliteStore, cmd: UserCommand) -> Result<()> {
    match cmd {
        UserCommand::Create { name, superuser, grant_tokens, password_stdin, json } => {
            let password_hash = if password_stdin {
                let pw = read_password_stdin()?;
                Some(hash_password(pw.expose()).map_err(|e| anyhow!("{e}"))?)
            } else {
                None
            };
            let u = store
                .create_user(NewUser {
                    username: name.clone(),
                    password_hash,
                    is_active: true,
                    is_superuser: superuser,
                    can_grant_tokens: grant_tokens || superuser,
                    ..Default::default()
                })
                .await
                .map_err(|e| match e {
                    nbtoken_store::StoreError::Conflict(_) => anyhow!("a user named {name:?} already exists"),
                    other => other.into(),
                })?;
            if json {
                print_json(&api_json::user(&base(None), &u, false));
            } else {
                println!("created user {} (id {})", u.username, u.id);
            }
        }
        UserCommand::List { json } => {
            let (_, users) = store.list_users(&UserFilter::default(), ALL).await?;
            if json {
                let b = base(None);
                print_json(&Value::Array(users.iter().map(|u| api_json::user(&b, u, false)).collect()));
            } else {
                println!("{}", users_table(&users));
            }
        }
        UserCommand::SetPassword { name, password_stdin } => {
            let u = find_user(store, &name).await?;
            let (pw, generated) = if password_stdin {
                (read_password_stdin()?, false)
            } else {
                let v = nbtoken_core::pepper::generate_value()?;
                (SecretString::from(&v.expose()[..24]), true)
            };
            let hash = hash_password(pw.expose()).map_err(|e| anyhow!("{e}"))?;
            store
                .update_user(u.id, UserPatch { password_hash: Some(Some(hash)), ..Default::default() })
                .await?;
            if generated {
                println!("new password for {name} (shown once): {}", pw.expose());
            } else {
                println!("password of {name} changed");
            }
        }
        UserCommand::Disable { name } | UserCommand::Enable { name } if name.is_empty() => {
            bail!("empty username")
        }
        UserCommand::Disable { name } => {
            let u = find_user(store, &name).await?;
            store.update_user(u.id, UserPatch { is_active: Some(false), ..Default::default() }).await?;
            println!("disabled user {name}: their tokens no longer authenticate");
        }
        UserCommand::Enable { name } => {
            let u = find_user(store, &name).await?;
            store.update_user(u.id, UserPatch { is_active: Some(true), ..Default::default() }).await?;
            println!("enabled user {name}");
        }
    }
    Ok(())
}

async fn token(settings: &Settings, store: &SqliteStore, cmd: TokenCommand) -> Result<()> {
    let b = base(Some(settings));
    match cmd {
        TokenCommand::Create(args) => token_create(settings, store, args).await,
        TokenCommand::List { user, version, json } => {
            let mut filter = TokenFilter::default();
            if let Some(name) = user {
                filter.user_ids = vec![find_user(store, &name).await?.id];
            }
            if let Some(v) = version {
                filter.version = Some(TokenVersion::from_u8(v)?);
            }
            let (_, rows) = store.list_tokens(&filter, ALL).await?;
            if json {
                print_json(&Value::Array(rows.iter().map(|r| api_json::token(&b, r, false)).collect()));
            } else {
                println!("{}", tokens_table(&rows));
            }
            Ok(())
        }
        TokenCommand::Show { id, json } => {
            let r = store.token(id).await?.ok_or_else(|| anyhow!("no token with id {id}"))?;
            if json {
                print_json(&api_json::token(&b, &r, false));
            } else {
                println!("{}", tokens_table(std::slice::from_ref(&r)));
            }
            Ok(())
        }
        TokenCommand::Disable { id } => set_enabled(store, id, false).await,
        TokenCommand::Enable { id } => set_enabled(store, id, true).await,
        TokenCommand::Delete { id } => {
            store.delete_token(id).await.map_err(|e| not_found(e, id))?;
            println!("deleted token {id}");
            Ok(())
        }
    }
}

fn not_found(e: nbtoken_store::StoreError, id: i64) -> anyhow::Error {
    match e {
        nbtoken_store::StoreError::NotFound => anyhow!("no token with id {id}"),
        other => other.into(),
    }
}

async fn set_enabled(store: &SqliteStore, id: i64, enabled: bool) -> Result<()> {
    store
        .update_token(id, TokenPatch { enabled: Some(enabled), ..Default::default() })
        .await
        .map_err(|e| not_found(e, id))?;
    println!("{} token {id}", if enabled { "enabled" } else { "disabled" });
    Ok(())
}

async fn token_create(settings: &Settings, store: &SqliteStore, args: TokenCreateArgs) -> Result<()> {
    let owner = find_user(store, &args.user).await?;
    let expires = match &args.expires {
        Some(s) => Some(
            api_json::parse_timestamp(s)
                .ok_or_else(|| anyhow!("invalid --expires {s:?}: use RFC 3339, e.g. 2027-01-01T00:00:00Z"))?,
        ),
        None => None,
    };
    let mut nets = Vec::new();
    for s in &args.allowed_ips {
        let net = s
            .parse::<ipnet::IpNet>()
            .or_else(|_| s.parse::<std::net::IpAddr>().map(ipnet::IpNet::from))
            .map_err(|_| anyhow!("invalid --allowed-ip {s:?}: expected a CIDR such as 10.0.0.0/8"))?;
        nets.push(net);
    }
    let created = create_token(
        store,
        &settings.peppers,
        settings.v1_policy,
        owner.id,
        TokenSpec {
            version: TokenVersion::from_u8(args.version)?,
            description: args.description,
            expires,
            write_enabled: !args.read_only,
            allowed_ips: nbtoken_core::AllowedIps::new(nets),
            ..Default::default()
        },
    )
    .await?;
    if args.json {
        let mut v = api_json::token(&base(Some(settings)), &created.record, false);
        if let Value::Object(o) = &mut v {
            o.insert("token".into(), json!(created.secret.expose()));
        }
        print_json(&v);
    } else {
        let keyword = if created.record.token.version() == TokenVersion::V1 { "Token" } else { "Bearer" };
        println!(
            "created token {} for {} (shown once; store it now):",
            created.record.token.id, owner.username
        );
        println!("Authorization: {keyword} {}", created.token.expose());
    }
    Ok(())
}
