//! A minimal client of Tarantool's binary protocol (IPROTO): greeting, CHAP-SHA1 authentication,
//! CALL and EVAL, one request at a time per connection, and a small pool of connections.
//!
//! Written here because no maintained crate speaks to the Tarantool Debian ships (2.6): the
//! `tarantool` crates' client starts with IPROTO_ID (Tarantool 2.10+), and `rusty_tarantool`
//! drags in rustc-serialize-era msgpack and a logger. The protocol is small: a request is a
//! msgpack length, a header map and a body map. https://www.tarantool.io/en/doc/latest/dev_guide/internals/box_protocol/

use std::io::Cursor;
use std::sync::Mutex;

use anyhow::{Context, Result, bail};
use base64::Engine as _;
use rmpv::Value;
use sha1::{Digest, Sha1};
use tokio::io::{AsyncReadExt, AsyncWriteExt, BufStream};
use tokio::net::TcpStream;

const REQUEST_TYPE: u64 = 0x00;
const SYNC: u64 = 0x01;
const TUPLE: u64 = 0x21;
const FUNCTION_NAME: u64 = 0x22;
const USER_NAME: u64 = 0x23;
const EXPR: u64 = 0x27;
const DATA: u64 = 0x30;
const ERROR_24: u64 = 0x31;
const AUTH: u64 = 0x07;
const EVAL: u64 = 0x08;
const CALL: u64 = 0x0a;

pub struct Connection {
    stream: BufStream<TcpStream>,
    sync: u64,
}

impl Connection {
    pub async fn connect(address: &str, user: &str, password: &str) -> Result<Self> {
        let tcp = TcpStream::connect(address)
            .await
            .with_context(|| format!("connecting to Tarantool at {address}"))?;
        tcp.set_nodelay(true)?;
        let mut connection = Self {
            stream: BufStream::new(tcp),
            sync: 0,
        };
        let mut greeting = [0u8; 128];
        connection.stream.read_exact(&mut greeting).await?;
        if !greeting.starts_with(b"Tarantool") {
            bail!("{address} is not Tarantool");
        }
        let salt = base64::engine::general_purpose::STANDARD
            .decode(String::from_utf8_lossy(&greeting[64..108]).trim())
            .context("Tarantool's greeting salt")?;
        connection
            .request(
                AUTH,
                vec![
                    (Value::from(USER_NAME), Value::from(user)),
                    (
                        Value::from(TUPLE),
                        Value::Array(vec![
                            Value::from("chap-sha1"),
                            Value::Binary(scramble(&salt, password)),
                        ]),
                    ),
                ],
            )
            .await
            .context("authenticating with Tarantool")?;
        Ok(connection)
    }

    /// Calls a stored (global Lua) function; its results as an array.
    pub async fn call(&mut self, function: &str, args: Vec<Value>) -> Result<Vec<Value>> {
        self.request(
            CALL,
            vec![
                (Value::from(FUNCTION_NAME), Value::from(function)),
                (Value::from(TUPLE), Value::Array(args)),
            ],
        )
        .await
    }

    pub async fn eval(&mut self, expression: &str, args: Vec<Value>) -> Result<Vec<Value>> {
        self.request(
            EVAL,
            vec![
                (Value::from(EXPR), Value::from(expression)),
                (Value::from(TUPLE), Value::Array(args)),
            ],
        )
        .await
    }

    async fn request(&mut self, code: u64, body: Vec<(Value, Value)>) -> Result<Vec<Value>> {
        self.sync += 1;
        let header = Value::Map(vec![
            (Value::from(REQUEST_TYPE), Value::from(code)),
            (Value::from(SYNC), Value::from(self.sync)),
        ]);
        let mut payload = Vec::with_capacity(64);
        rmpv::encode::write_value(&mut payload, &header)?;
        rmpv::encode::write_value(&mut payload, &Value::Map(body))?;
        self.stream.write_u8(0xce).await?;
        self.stream.write_u32(payload.len() as u32).await?;
        self.stream.write_all(&payload).await?;
        self.stream.flush().await?;

        let length = match self.stream.read_u8().await? {
            0xce => self.stream.read_u32().await? as usize,
            0xcd => usize::from(self.stream.read_u16().await?),
            small @ 0..=0x7f => usize::from(small),
            other => bail!("Tarantool sent a length prefix 0x{other:02x}"),
        };
        let mut frame = vec![0u8; length];
        self.stream.read_exact(&mut frame).await?;
        let mut cursor = Cursor::new(&frame[..]);
        let header = rmpv::decode::read_value(&mut cursor)?;
        let body = if (cursor.position() as usize) < frame.len() {
            rmpv::decode::read_value(&mut cursor)?
        } else {
            Value::Map(Vec::new())
        };
        let field = |map: &Value, key: u64| -> Option<Value> {
            map.as_map()?
                .iter()
                .find(|(k, _)| k.as_u64() == Some(key))
                .map(|(_, v)| v.clone())
        };
        let status = field(&header, REQUEST_TYPE)
            .and_then(|v| v.as_u64())
            .unwrap_or(0);
        if field(&header, SYNC).and_then(|v| v.as_u64()) != Some(self.sync) {
            bail!("Tarantool answered another request");
        }
        if status != 0 {
            let message = field(&body, ERROR_24)
                .and_then(|v| v.as_str().map(str::to_owned))
                .unwrap_or_else(|| format!("error code {}", status & 0x7fff));
            bail!("Tarantool: {message}");
        }
        Ok(match field(&body, DATA) {
            Some(Value::Array(values)) => values,
            _ => Vec::new(),
        })
    }
}

/// CHAP-SHA1: sha1(password) XOR sha1(salt[..20] ++ sha1(sha1(password))).
fn scramble(salt: &[u8], password: &str) -> Vec<u8> {
    let step1 = Sha1::digest(password.as_bytes());
    let step2 = Sha1::digest(step1);
    let mut hasher = Sha1::new();
    hasher.update(&salt[..20.min(salt.len())]);
    hasher.update(step2);
    let step3 = hasher.finalize();
    step1.iter().zip(step3.iter()).map(|(a, b)| a ^ b).collect()
}

/// Connections made on demand and kept for reuse; one is dropped, not returned, after an error
/// (its stream may hold half a reply).
pub struct Pool {
    address: String,
    user: String,
    password: String,
    idle: Mutex<Vec<Connection>>,
}

impl Pool {
    pub fn new(address: &str, user: &str, password: &str) -> Self {
        Self {
            address: address.to_owned(),
            user: user.to_owned(),
            password: password.to_owned(),
            idle: Mutex::new(Vec::new()),
        }
    }

    pub async fn call(&self, function: &str, args: Vec<Value>) -> Result<Vec<Value>> {
        let mut connection = self.take().await?;
        let result = connection.call(function, args).await;
        if result.is_ok()
            || result
                .as_ref()
                .is_err_and(|e| e.to_string().starts_with("Tarantool: "))
        {
            self.idle.lock().expect("not poisoned").push(connection);
        }
        result
    }

    pub async fn eval(&self, expression: &str, args: Vec<Value>) -> Result<Vec<Value>> {
        let mut connection = self.take().await?;
        let result = connection.eval(expression, args).await;
        if result.is_ok() {
            self.idle.lock().expect("not poisoned").push(connection);
        }
        result
    }

    async fn take(&self) -> Result<Connection> {
        let idle = self.idle.lock().expect("not poisoned").pop();
        match idle {
            Some(connection) => Ok(connection),
            None => Connection::connect(&self.address, &self.user, &self.password).await,
        }
    }
}
