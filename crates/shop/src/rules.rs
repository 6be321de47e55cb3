//! The shop's rules, apart from HTTP: who may change what, where carts live, idempotency.

use std::sync::Arc;
use std::time::Duration;

use agora_platform::db::{self, Work};
use agora_platform::ids::IdGenerator;
use agora_platform::session::Sessions;
use sha2::{Digest, Sha256};
use time::OffsetDateTime;

use crate::carts::{Change, RedisCarts};
use crate::domain::{CustomerFields, OrderAction, Page, ProductFields};
use crate::error::ShopError;
use crate::store::{CartLine, Customer, Idempotency, Order, Ownership, Product, Store};

/// Where the carts are.
#[derive(Clone)]
pub enum Carts {
    Postgres,
    Redis(Box<RedisCarts>),
}

/// A write's reply body, and whether it is the stored reply of an earlier request.
pub struct Reply {
    pub body: String,
    pub replayed: bool,
}

/// The shop. Cheap to clone.
#[derive(Clone)]
pub struct Shop {
    inner: Arc<State>,
}

struct State {
    store: Store,
    carts: Carts,
    sessions: Sessions,
    ids: IdGenerator,
    deadline: Duration,
}

impl axum::extract::FromRef<Shop> for Sessions {
    fn from_ref(shop: &Shop) -> Sessions {
        shop.inner.sessions.clone()
    }
}

/// An `Idempotency-Key` and a hash of the request it came with.
pub struct Key {
    key: String,
    hash: Vec<u8>,
}

impl Key {
    fn idempotency(&self) -> Idempotency<'_> {
        Idempotency {
            key: &self.key,
            request_hash: &self.hash,
        }
    }

    /// `request` names the operation and its parameters: the same key with another request
    /// is refused.
    pub fn new(key: String, request: &str) -> Self {
        Self {
            hash: Sha256::digest(request.as_bytes()).to_vec(),
            key,
        }
    }
}

fn now() -> OffsetDateTime {
    OffsetDateTime::now_utc()
}

impl Shop {
    pub fn new(
        store: Store,
        carts: Carts,
        sessions: Sessions,
        ids: IdGenerator,
        deadline: Duration,
    ) -> Self {
        Self {
            inner: Arc::new(State {
                store,
                carts,
                sessions,
                ids,
                deadline,
            }),
        }
    }

    /// A write, repeated after a lost race or a broken connection, each attempt bounded.
    async fn write<T, Fut>(&self, attempt: impl FnMut() -> Fut) -> Result<T, ShopError>
    where
        Fut: std::future::Future<Output = Result<T, ShopError>>,
    {
        db::write_retrying(self.inner.deadline, "shop", attempt).await
    }

    /// A read, bounded.
    async fn read<T>(
        &self,
        read: impl std::future::Future<Output = Result<T, ShopError>>,
    ) -> Result<T, ShopError> {
        db::within(self.inner.deadline, Work::Read, read).await
    }

    pub fn store(&self) -> &Store {
        &self.inner.store
    }

    pub fn sessions(&self) -> &Sessions {
        &self.inner.sessions
    }

    // --- catalog -------------------------------------------------------------------------

    pub async fn create_product(
        &self,
        seller: i64,
        fields: ProductFields,
    ) -> Result<Product, ShopError> {
        let id = self.inner.ids.next();
        let at = now();
        self.write(|| async { Ok(self.store().insert_product(id, seller, &fields, at).await?) })
            .await
    }

    pub async fn product(&self, id: i64) -> Result<Product, ShopError> {
        self.read(async { Ok(self.store().product(id).await?) })
            .await?
            .ok_or(ShopError::NotFound("product not found"))
    }

    pub async fn products(
        &self,
        category: Option<&str>,
        page: Page,
    ) -> Result<Vec<Product>, ShopError> {
        self.read(async { Ok(self.store().products(category, page).await?) })
            .await
    }

    pub async fn update_product(
        &self,
        seller: i64,
        id: i64,
        fields: ProductFields,
    ) -> Result<Product, ShopError> {
        let at = now();
        let outcome = self
            .write(|| async { Ok(self.store().update_product(id, seller, &fields, at).await?) })
            .await?;
        match outcome {
            (Ownership::Changed, Some(product)) => Ok(product),
            (Ownership::NotOwner, _) => {
                Err(ShopError::Forbidden("only the seller can change a product"))
            }
            _ => Err(ShopError::NotFound("product not found")),
        }
    }

    pub async fn delete_product(&self, seller: i64, id: i64) -> Result<(), ShopError> {
        let outcome = self
            .write(|| async { Ok(self.store().delete_product(id, seller).await?) })
            .await?;
        match outcome {
            Ownership::Changed => Ok(()),
            Ownership::NotOwner => {
                Err(ShopError::Forbidden("only the seller can remove a product"))
            }
            Ownership::NotFound => Err(ShopError::NotFound("product not found")),
        }
    }

    // --- customers -----------------------------------------------------------------------

    pub async fn create_customer(
        &self,
        user: i64,
        fields: CustomerFields,
    ) -> Result<Customer, ShopError> {
        let at = now();
        self.write(|| async { Ok(self.store().insert_customer(user, &fields, at).await?) })
            .await?
            .ok_or_else(|| {
                ShopError::conflict("you have a customer record already; PUT changes it")
            })
    }

    /// A customer record is its owner's to read and change.
    fn own(caller: i64, user: i64) -> Result<(), ShopError> {
        if caller == user {
            Ok(())
        } else {
            Err(ShopError::Forbidden(
                "a customer record is only its owner's",
            ))
        }
    }

    pub async fn customer(&self, caller: i64, user: i64) -> Result<Customer, ShopError> {
        Self::own(caller, user)?;
        self.read(async { Ok(self.store().customer(user).await?) })
            .await?
            .ok_or(ShopError::NotFound("no customer record"))
    }

    pub async fn update_customer(
        &self,
        caller: i64,
        user: i64,
        fields: CustomerFields,
    ) -> Result<Customer, ShopError> {
        Self::own(caller, user)?;
        let at = now();
        self.write(|| async { Ok(self.store().update_customer(user, &fields, at).await?) })
            .await?
            .ok_or(ShopError::NotFound("no customer record"))
    }

    pub async fn delete_customer(&self, caller: i64, user: i64) -> Result<(), ShopError> {
        Self::own(caller, user)?;
        if self
            .write(|| async { Ok(self.store().delete_customer(user).await?) })
            .await?
        {
            Ok(())
        } else {
            Err(ShopError::NotFound("no customer record"))
        }
    }

    // --- carts ---------------------------------------------------------------------------

    pub async fn cart(&self, user: i64) -> Result<(Vec<CartLine>, Vec<Product>), ShopError> {
        self.read(async {
            let lines = match &self.inner.carts {
                Carts::Postgres => self.store().cart(user).await?,
                Carts::Redis(carts) => carts.lines(user).await?,
            };
            let ids: Vec<i64> = lines.iter().map(|line| line.product_id).collect();
            let products = if ids.is_empty() {
                Vec::new()
            } else {
                self.store().products_by_ids(&ids).await?
            };
            Ok((lines, products))
        })
        .await
    }

    /// Sets a line's quantity (0 removes it); `product: None` empties the cart.
    pub async fn change_cart(
        &self,
        user: i64,
        product: Option<i64>,
        quantity: i32,
        key: Option<Key>,
    ) -> Result<Reply, ShopError> {
        match &self.inner.carts {
            Carts::Postgres => {
                let idempotency = key.as_ref().map(Key::idempotency);
                let at = now();
                let (body, replayed) = self
                    .write(|| {
                        self.store()
                            .change_cart(user, product, quantity, idempotency.as_ref(), at)
                    })
                    .await?;
                Ok(Reply { body, replayed })
            }
            Carts::Redis(carts) => {
                if let Some(product) = product
                    && quantity > 0
                    && self
                        .read(async { Ok(self.store().product(product).await?) })
                        .await?
                        .is_none()
                {
                    return Err(ShopError::NotFound("product not found"));
                }
                let idempotency = key
                    .as_ref()
                    .map(|key| (key.key.as_str(), key.hash.as_slice()));
                match carts.change(user, product, quantity, idempotency).await? {
                    Change::Done(body) => Ok(Reply {
                        body,
                        replayed: false,
                    }),
                    Change::Replayed(body) => Ok(Reply {
                        body,
                        replayed: true,
                    }),
                    Change::KeyReused => Err(ShopError::KeyReused),
                }
            }
        }
    }

    // --- orders --------------------------------------------------------------------------

    /// Orders the cart.
    pub async fn checkout(&self, user: i64, key: Option<Key>) -> Result<Reply, ShopError> {
        let idempotency = key.as_ref().map(Key::idempotency);
        let id = self.inner.ids.next();
        match &self.inner.carts {
            Carts::Postgres => {
                let at = now();
                let (body, replayed) = self
                    .write(|| {
                        self.store()
                            .checkout(user, id, None, idempotency.as_ref(), at)
                    })
                    .await?;
                Ok(Reply { body, replayed })
            }
            Carts::Redis(carts) => {
                let lines = carts.lines_for_order(user).await?;
                let at = now();
                let (body, replayed) = self
                    .write(|| {
                        self.store()
                            .checkout(user, id, Some(&lines), idempotency.as_ref(), at)
                    })
                    .await?;
                if !replayed && let Err(error) = carts.remove(user, &lines).await {
                    // The order stands; the cart keeps lines the client can remove.
                    tracing::warn!(%error, user, "ordered lines left in the cart");
                }
                Ok(Reply { body, replayed })
            }
        }
    }

    pub async fn order(&self, user: i64, id: i64) -> Result<Order, ShopError> {
        self.read(async { Ok(self.store().order(user, id).await?) })
            .await?
            .ok_or(ShopError::NotFound("order not found"))
    }

    pub async fn orders(&self, user: i64, page: Page) -> Result<Vec<Order>, ShopError> {
        self.read(async { Ok(self.store().orders(user, page).await?) })
            .await
    }

    pub async fn move_order(
        &self,
        user: i64,
        id: i64,
        action: OrderAction,
        key: Option<Key>,
    ) -> Result<Reply, ShopError> {
        let idempotency = key.as_ref().map(Key::idempotency);
        let at = now();
        let (body, replayed) = self
            .write(|| {
                self.store()
                    .move_order(user, id, action, idempotency.as_ref(), at)
            })
            .await?;
        Ok(Reply { body, replayed })
    }
}
