//! The `api_tokens` table. Only a SHA-256 digest of each token is stored: tokens are
//! long random strings, so a fast hash suffices and a leaked table reveals none.

use diesel::prelude::*;
use protocol::{Role, Timestamp, TokenInfo};
use sha2::{Digest, Sha256};

use crate::changes::{announce, Change};
use crate::db::Conn;
use crate::models::TokenRow;
use crate::schema::api_tokens;
use crate::{with_conn, Result, StorageError};

/// Hex SHA-256 of a token, the form stored and looked up.
pub fn hash_token(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// A stored token: its name, role and digest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredToken {
    pub name: String,
    pub role: Role,
    pub token_hash: String,
    pub created_at: Timestamp,
}

impl TryFrom<TokenRow> for StoredToken {
    type Error = StorageError;

    fn try_from(row: TokenRow) -> Result<Self> {
        Ok(StoredToken {
            role: row
                .role
                .parse()
                .map_err(|e: String| StorageError::Corrupt(format!("token {}: {e}", row.name)))?,
            name: row.name,
            token_hash: row.token_hash,
            created_at: Timestamp(row.created_at),
        })
    }
}

impl From<&StoredToken> for TokenInfo {
    fn from(t: &StoredToken) -> Self {
        TokenInfo {
            name: t.name.clone(),
            role: t.role,
            created_at: t.created_at,
        }
    }
}

/// Every stored token, by name.
pub fn list_tokens(conn: &mut Conn) -> Result<Vec<StoredToken>> {
    let rows: Vec<TokenRow> = with_conn!(conn, c => api_tokens::table
        .order(api_tokens::name.asc())
        .select(TokenRow::as_select())
        .load(c))?;
    rows.into_iter().map(StoredToken::try_from).collect()
}

/// Stores a token under `name`. False when the name or the token is already taken.
pub fn insert_token(
    conn: &mut Conn,
    name: &str,
    role: Role,
    token: &str,
    now: Timestamp,
) -> Result<bool> {
    let row = TokenRow {
        name: name.to_owned(),
        role: role.as_str().to_owned(),
        token_hash: hash_token(token),
        created_at: now.as_micros(),
    };
    let inserted = with_conn!(conn, c => diesel::insert_into(api_tokens::table)
        .values(&row)
        .on_conflict_do_nothing()
        .execute(c))?;
    if inserted == 1 {
        announce(conn, Change::Tokens);
    }
    Ok(inserted == 1)
}

/// Stores or replaces the token called `name` (used for `TASKLENS_ADMIN_TOKEN`).
pub fn upsert_token(
    conn: &mut Conn,
    name: &str,
    role: Role,
    token: &str,
    now: Timestamp,
) -> Result<()> {
    let hash = hash_token(token);
    let row = TokenRow {
        name: name.to_owned(),
        role: role.as_str().to_owned(),
        token_hash: hash.clone(),
        created_at: now.as_micros(),
    };
    // Nodes starting together each store the same admin token. The insert takes
    // over a row another one wrote; two inserts racing on an empty table can still
    // collide on the token's own unique index (`ON CONFLICT` names one index), and
    // then the loser tries again and finds the winner's row.
    let mut attempts = 0;
    loop {
        attempts += 1;
        let stored = with_conn!(conn, c => c.transaction(|c| {
            diesel::delete(
                api_tokens::table
                    .filter(api_tokens::token_hash.eq(&hash))
                    .filter(api_tokens::name.ne(name)),
            )
            .execute(c)?;
            diesel::insert_into(api_tokens::table)
                .values(&row)
                .on_conflict(api_tokens::name)
                .do_update()
                .set((
                    api_tokens::role.eq(&row.role),
                    api_tokens::token_hash.eq(&row.token_hash),
                    api_tokens::created_at.eq(row.created_at),
                ))
                .execute(c)?;
            Ok::<_, diesel::result::Error>(())
        }));
        match stored {
            Ok(()) => break,
            Err(diesel::result::Error::DatabaseError(
                diesel::result::DatabaseErrorKind::UniqueViolation,
                _,
            )) if attempts < 5 => continue,
            Err(e) => return Err(e.into()),
        }
    }
    announce(conn, Change::Tokens);
    Ok(())
}

/// Deletes the token called `name`. False when there was none.
pub fn delete_token(conn: &mut Conn, name: &str) -> Result<bool> {
    let deleted = with_conn!(conn, c => diesel::delete(api_tokens::table.find(name)).execute(c))?;
    if deleted == 1 {
        announce(conn, Change::Tokens);
    }
    Ok(deleted == 1)
}

/// What [`delete_token_keeping_an_admin`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenDeletion {
    Deleted,
    NotFound,
    /// It is the only admin token; deleting it would lock every admin out.
    LastAdmin,
}

/// Deletes the token called `name` unless it is the last admin token. The check and
/// the delete happen under one write lock, so two concurrent deletions cannot remove
/// the last two admin tokens.
pub fn delete_token_keeping_an_admin(conn: &mut Conn, name: &str) -> Result<TokenDeletion> {
    let deletion = delete_keeping_an_admin(conn, name)?;
    if deletion == TokenDeletion::Deleted {
        announce(conn, Change::Tokens);
    }
    Ok(deletion)
}

fn delete_keeping_an_admin(conn: &mut Conn, name: &str) -> Result<TokenDeletion> {
    use diesel::connection::SimpleConnection;
    macro_rules! body {
        ($c:ident) => {{
            let role: Option<String> = api_tokens::table
                .find(name)
                .select(api_tokens::role)
                .first($c)
                .optional()?;
            let Some(role) = role else {
                return Ok(TokenDeletion::NotFound);
            };
            if role == Role::Admin.as_str() {
                let admins: i64 = api_tokens::table
                    .filter(api_tokens::role.eq(Role::Admin.as_str()))
                    .count()
                    .get_result($c)?;
                if admins <= 1 {
                    return Ok(TokenDeletion::LastAdmin);
                }
            }
            diesel::delete(api_tokens::table.find(name)).execute($c)?;
            Ok(TokenDeletion::Deleted)
        }};
    }
    match conn {
        Conn::Sqlite(pooled) => {
            let c: &mut diesel::SqliteConnection = pooled;
            c.immediate_transaction(|c| body!(c))
        }
        Conn::Postgres(pooled) => {
            let c: &mut diesel::PgConnection = pooled;
            c.transaction(|c| {
                c.batch_execute("LOCK TABLE api_tokens IN SHARE ROW EXCLUSIVE MODE")?;
                body!(c)
            })
        }
    }
}
