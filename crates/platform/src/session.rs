//! Bearer-token sessions, shared by every service: the social network opens and closes them at
//! login and logout; any service (dialogs running alone included) checks them through
//! [`Sessions::authenticate`], which needs only the database that holds the `sessions` table
//! (created by the social network's first migration, where the users are) and Redis for the
//! cache's revocations.

use std::marker::PhantomData;
use std::time::Duration;

use axum::extract::{FromRef, FromRequestParts, OptionalFromRequestParts};
use axum::http::request::Parts;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};

use crate::auth::{SessionCache, TokenHash};
use crate::credentials::{issue_token, stored_token_hash};
use crate::db::{DbError, DbPool};
use crate::error::ApiError;
use crate::http::{bearer_token, session_token};
use crate::ids::UserId;

/// The sessions table and the checked-token cache in front of it. Cheap to clone.
#[derive(Clone)]
pub struct Sessions {
    pool: DbPool,
    cache: SessionCache,
}

/// Why a request is not authenticated.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("missing bearer token")]
    Missing,
    #[error("invalid or expired token")]
    Invalid,
    #[error(transparent)]
    Database(#[from] DbError),
}

impl From<deadpool_postgres::PoolError> for AuthError {
    fn from(error: deadpool_postgres::PoolError) -> Self {
        AuthError::Database(error.into())
    }
}

impl IntoResponse for AuthError {
    fn into_response(self) -> Response {
        match self {
            AuthError::Missing | AuthError::Invalid => {
                let mut response = ApiError::unauthorized(self.to_string()).into_response();
                response
                    .headers_mut()
                    .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
                response
            }
            AuthError::Database(error) => ApiError::from(error).into_response(),
        }
    }
}

impl Sessions {
    pub fn new(pool: DbPool, cache: SessionCache) -> Self {
        Self { pool, cache }
    }

    /// This instance's checked tokens; its `listen` task must run for it to be used.
    pub fn cache(&self) -> &SessionCache {
        &self.cache
    }

    /// The user a bearer token belongs to, and how long the token stays valid.
    pub async fn authenticate(&self, token: &str) -> Result<(UserId, Duration), AuthError> {
        let hash = stored_token_hash(token).ok_or(AuthError::Invalid)?;
        self.authenticate_hash(hash).await
    }

    /// [`Sessions::authenticate`] for a token already hashed.
    async fn authenticate_hash(&self, hash: TokenHash) -> Result<(UserId, Duration), AuthError> {
        if let Some((user, valid_for)) = self.cache.get(&hash) {
            return Ok((UserId(user), valid_for));
        }
        let generation = self.cache.generation();
        let db = self.pool.get().await?;
        let statement = db
            .prepare_cached(
                "SELECT user_id, extract(epoch FROM expires_at - now())::float8 FROM sessions \
                 WHERE token_hash = $1 AND expires_at > now()",
            )
            .await
            .map_err(DbError::from)?;
        let row = db
            .query_opt(&statement, &[&hash])
            .await
            .map_err(DbError::from)?
            .ok_or(AuthError::Invalid)?;
        let (user, valid_secs): (i64, f64) = (row.get(0), row.get(1));
        let valid_for = Duration::from_secs_f64(valid_secs.max(0.0));
        self.cache.insert(hash, user, valid_for, generation);
        Ok((UserId(user), valid_for))
    }

    /// Which of `hashes` are sessions still open (not revoked, not expired), asked of the
    /// database, never of the cache.
    pub async fn still_open(&self, hashes: &[TokenHash]) -> Result<Vec<TokenHash>, DbError> {
        if hashes.is_empty() {
            return Ok(Vec::new());
        }
        let db = self.pool.get().await?;
        let statement = db
            .prepare_cached(
                "SELECT token_hash FROM sessions WHERE token_hash = ANY($1) AND expires_at > now()",
            )
            .await?;
        let rows = db.query(&statement, &[&hashes]).await?;
        Ok(rows.iter().map(|row| row.get(0)).collect())
    }

    /// A new session for `user`, valid for `ttl`; the user's oldest sessions beyond
    /// `max_per_user` end (and every instance forgets them). Returns the token.
    pub async fn open(
        &self,
        user: UserId,
        ttl: Duration,
        max_per_user: i64,
    ) -> Result<String, DbError> {
        let token = issue_token();
        let db = self.pool.get().await?;
        // Expired sessions of this user go at the same time, so the table cannot grow without
        // bound for users who log in often. Both deletes skip rows another login of the same
        // user is deleting (SKIP LOCKED): concurrent logins would otherwise lock the user's rows
        // in different orders and deadlock (seen as 500s in a burst of 300 logins).
        let statement = db
            .prepare_cached(
                "WITH expired AS ( \
                     DELETE FROM sessions WHERE token_hash IN ( \
                         SELECT token_hash FROM sessions WHERE user_id = $1 AND expires_at <= now() \
                         FOR UPDATE SKIP LOCKED)) \
                 INSERT INTO sessions (token_hash, user_id, expires_at) \
                 VALUES ($2, $1, now() + make_interval(secs => $3))",
            )
            .await?;
        db.execute(&statement, &[&user.0, &token.hash, &ttl.as_secs_f64()])
            .await?;
        let statement = db
            .prepare_cached(
                "DELETE FROM sessions WHERE user_id = $1 AND token_hash IN \
                   (SELECT token_hash FROM sessions WHERE user_id = $1 \
                    ORDER BY created_at DESC, token_hash OFFSET $2 FOR UPDATE SKIP LOCKED)",
            )
            .await?;
        let ended = db.execute(&statement, &[&user.0, &max_per_user]).await?;
        drop(db);
        if ended > 0 {
            self.cache.revoked(user.0).await;
        }
        Ok(token.token)
    }

    /// Ends the session of `token`, on every instance.
    pub async fn close(&self, token: &str) -> Result<UserId, AuthError> {
        let hash = stored_token_hash(token).ok_or(AuthError::Invalid)?;
        let db = self.pool.get().await?;
        let statement = db
            .prepare_cached("DELETE FROM sessions WHERE token_hash = $1 RETURNING user_id")
            .await
            .map_err(DbError::from)?;
        let user: i64 = db
            .query_opt(&statement, &[&hash])
            .await
            .map_err(DbError::from)?
            .ok_or(AuthError::Invalid)?
            .get(0);
        drop(db);
        self.cache.revoked(user).await;
        Ok(UserId(user))
    }

    /// Ends every session of `user`, on every instance.
    pub async fn close_all(&self, user: UserId) -> Result<(), DbError> {
        let db = self.pool.get().await?;
        let statement = db
            .prepare_cached("DELETE FROM sessions WHERE user_id = $1")
            .await?;
        db.execute(&statement, &[&user.0]).await?;
        drop(db);
        self.cache.revoked(user.0).await;
        Ok(())
    }
}

/// Where a request may carry its session token (see [`Authenticated`]).
pub trait TokenSource: Send + Sync + 'static {
    fn token(parts: &Parts) -> Option<&str>;
}

/// `Authorization: Bearer` only: every API route.
pub struct Bearer;

impl TokenSource for Bearer {
    fn token(parts: &Parts) -> Option<&str> {
        bearer_token(parts)
    }
}

/// The bearer token, or the web front end's session cookie on a request from one of this
/// server's own pages (`http::session_token`): browsers cannot set headers on a WebSocket
/// handshake.
pub struct BearerOrPageCookie;

impl TokenSource for BearerOrPageCookie {
    fn token(parts: &Parts) -> Option<&str> {
        session_token(parts)
    }
}

/// The user a request's session token belongs to: the one way every service authenticates a
/// request, for any state that yields [`Sessions`]; 401 in the error envelope (with
/// `WWW-Authenticate: Bearer`) without a valid token. `From` says where the token may be
/// ([`Bearer`] unless said otherwise); the web front end's pages read their cookie
/// themselves and check it with the same [`Sessions::authenticate`].
pub struct Authenticated<From: TokenSource = Bearer> {
    pub user: UserId,
    /// How long the token stays valid (for connections that outlive the request).
    pub valid_for: Duration,
    /// The session's stored token hash: a connection that outlives the request ends when this
    /// session is revoked.
    pub session: TokenHash,
    source: PhantomData<From>,
}

impl<S, From> FromRequestParts<S> for Authenticated<From>
where
    S: Send + Sync,
    Sessions: FromRef<S>,
    From: TokenSource,
{
    type Rejection = AuthError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let token = From::token(parts).ok_or(AuthError::Missing)?;
        let session = stored_token_hash(token).ok_or(AuthError::Invalid)?;
        let (user, valid_for) = Sessions::from_ref(state)
            .authenticate_hash(session.clone())
            .await?;
        Ok(Self {
            user,
            valid_for,
            session,
            source: PhantomData,
        })
    }
}

/// `Option<Authenticated>`: for reads that anyone may make and a signed-in caller sees more of.
/// No token is `None`; a token that is present but invalid is still 401, so a client never
/// mistakes an expired session for an anonymous answer.
impl<S> OptionalFromRequestParts<S> for Authenticated<Bearer>
where
    S: Send + Sync,
    Sessions: FromRef<S>,
{
    type Rejection = AuthError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &S,
    ) -> Result<Option<Self>, Self::Rejection> {
        if parts
            .headers
            .get(axum::http::header::AUTHORIZATION)
            .is_none()
        {
            return Ok(None);
        }
        <Self as FromRequestParts<S>>::from_request_parts(parts, state)
            .await
            .map(Some)
    }
}

/// Sessions for many `users` at once, valid for a week, in one statement (benchmark scenarios
/// give thousands of users a token); their tokens, in the same order. Nothing else writes to
/// the sessions table but this module.
pub async fn open_sessions(pool: &DbPool, users: &[i64]) -> Result<Vec<String>, DbError> {
    let issued: Vec<_> = users.iter().map(|_| issue_token()).collect();
    let hashes: Vec<&[u8]> = issued.iter().map(|token| token.hash.as_slice()).collect();
    pool.get()
        .await?
        .execute(
            "INSERT INTO sessions (token_hash, user_id, expires_at) \
             SELECT hash, user_id, now() + interval '7 days' FROM unnest($1::bytea[], $2::bigint[]) \
             AS t(hash, user_id)",
            &[&hashes, &users],
        )
        .await?;
    Ok(issued.into_iter().map(|token| token.token).collect())
}
