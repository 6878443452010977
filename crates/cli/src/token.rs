//! `moor token create|ls|rm`: join tokens, made and kept by the controllers (admin only).
//! A token is printed once, by `create`; `ls` never shows a secret.
//!
//! ```text
//! moor token create --role controller|agent [--ttl 24h] [--uses 1] ─► CreateToken ─► token
//! moor token ls ─► ListTokens ─► ID ROLE EXPIRES USES-LEFT
//! moor token rm ID ─► DeleteToken
//! ```

use std::path::Path;
use std::process::ExitCode;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::anyhow;
use clap::{Args, Subcommand, ValueEnum};
use proto::api::{JoinRole, Request, Response, TokenInfo};

use crate::cluster::{Session, finish, unexpected};

/// `moor token`.
#[derive(Debug, Args)]
pub struct TokenArgs {
    #[command(subcommand)]
    command: TokenCommand,
}

#[derive(Debug, Subcommand)]
enum TokenCommand {
    /// Make a join token and print it (the only time its secret is shown).
    Create(CreateArgs),
    /// List join tokens: id, role, expiry, uses left.
    Ls,
    /// Remove a join token.
    Rm {
        /// The token's id (the second part of the token).
        id: String,
    },
}

#[derive(Debug, Args)]
struct CreateArgs {
    /// What the token admits.
    #[arg(long, value_enum)]
    role: RoleArg,
    /// How long the token works (`90s`, `30m`, `24h`, `7d`).
    #[arg(long, default_value = "24h", value_parser = humantime::parse_duration)]
    ttl: Duration,
    /// How many joins the token allows.
    #[arg(long, default_value_t = 1)]
    uses: u32,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum RoleArg {
    Controller,
    Agent,
}

/// Runs a `moor token` command.
pub fn main(args: TokenArgs, config: Option<&Path>) -> ExitCode {
    finish((|| {
        let request = match &args.command {
            TokenCommand::Create(create) => {
                if create.ttl.as_secs() == 0 {
                    return Err(anyhow!("--ttl {:?}: expected at least 1s", create.ttl).into());
                }
                Request::CreateToken {
                    role: match create.role {
                        RoleArg::Controller => JoinRole::Controller,
                        RoleArg::Agent => JoinRole::Agent,
                    },
                    ttl_secs: create.ttl.as_secs(),
                    uses: create.uses,
                }
            }
            TokenCommand::Ls => Request::ListTokens,
            TokenCommand::Rm { id } => Request::DeleteToken { id: id.clone() },
        };
        let session = Session::open(config)?;
        match session.call(&request)? {
            Response::Token { token } => println!("{token}"),
            Response::Tokens(tokens) => print!("{}", table(&tokens, SystemTime::now())),
            Response::TokenDeleted { id } => println!("token {id} deleted"),
            other => return Err(unexpected(&other)),
        }
        Ok(())
    })())
}

/// The `ls` table: expiry as a time and how far off it is.
fn table(tokens: &[TokenInfo], now: SystemTime) -> String {
    let rows: Vec<[String; 4]> = tokens
        .iter()
        .map(|t| {
            let expires = UNIX_EPOCH + Duration::from_secs(t.expires_at);
            let when = humantime::format_rfc3339_seconds(expires).to_string();
            let left = match expires.duration_since(now) {
                Ok(d) => format!("{when} (in {})", humantime::format_duration(round(d))),
                Err(_) => format!("{when} (expired)"),
            };
            [
                t.id.clone(),
                t.role.to_string(),
                left,
                t.uses_left.to_string(),
            ]
        })
        .collect();
    crate::table::render(&["ID", "ROLE", "EXPIRES", "USES LEFT"], &rows)
}

fn round(d: Duration) -> Duration {
    Duration::from_secs(d.as_secs())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_shows_expiry_and_uses_but_no_secret() {
        let now = UNIX_EPOCH + Duration::from_secs(1_000_000);
        let tokens = vec![
            TokenInfo {
                id: "0123456789ab".into(),
                role: JoinRole::Controller,
                expires_at: 1_000_060,
                uses_left: 1,
            },
            TokenInfo {
                id: "ba9876543210".into(),
                role: JoinRole::Agent,
                expires_at: 999_000,
                uses_left: 0,
            },
        ];
        let text = table(&tokens, now);
        let lines: Vec<&str> = text.lines().collect();
        assert!(lines[0].starts_with("ID"), "{text}");
        assert!(
            lines[1].contains("controller") && lines[1].contains("(in 1m)"),
            "{text}"
        );
        assert!(
            lines[2].contains("(expired)") && lines[2].ends_with('0'),
            "{text}"
        );
    }
}
