//! What the shop accepts, as types: a request that gets here is valid.

use serde::Deserialize;

use crate::error::ShopError;

pub const MAX_QUANTITY: i32 = 1000;
pub const MAX_PRICE_MINOR: i64 = 1_000_000_000_000;
pub const MAX_STOCK: i32 = 10_000_000;
pub const DEFAULT_PAGE: i64 = 20;
pub const MAX_PAGE: i64 = 100;

/// PostgreSQL refuses NUL in text: refused here, as bad input, before it gets there.
fn no_nul(field: &'static str, value: &str) -> Result<(), ShopError> {
    if value.contains('\0') {
        return Err(ShopError::invalid(format!(
            "{field} contains a NUL character"
        )));
    }
    Ok(())
}

fn text(field: &'static str, value: Option<String>, max: usize) -> Result<String, ShopError> {
    let value = value.ok_or_else(|| ShopError::invalid(format!("{field} is required")))?;
    no_nul(field, &value)?;
    let value = value.trim();
    if value.is_empty() {
        return Err(ShopError::invalid(format!("{field} must not be empty")));
    }
    if value.chars().count() > max {
        return Err(ShopError::invalid(format!(
            "{field} must be at most {max} characters"
        )));
    }
    Ok(value.to_owned())
}

fn optional_text(
    field: &'static str,
    value: Option<String>,
    max: usize,
) -> Result<String, ShopError> {
    let value = value.unwrap_or_default();
    no_nul(field, &value)?;
    if value.chars().count() > max {
        return Err(ShopError::invalid(format!(
            "{field} must be at most {max} characters"
        )));
    }
    Ok(value.trim().to_owned())
}

/// A product as sent by its seller.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProductRequest {
    pub name: Option<String>,
    pub description: Option<String>,
    pub category: Option<String>,
    pub price_minor: Option<i64>,
    pub stock: Option<i64>,
}

#[derive(Debug, Clone)]
pub struct ProductFields {
    pub name: String,
    pub description: String,
    pub category: String,
    pub price_minor: i64,
    pub stock: i32,
}

impl ProductFields {
    pub fn parse(request: ProductRequest) -> Result<Self, ShopError> {
        let price_minor = request.price_minor.ok_or_else(|| {
            ShopError::invalid("price_minor is required (an integer of minor units)")
        })?;
        if !(0..=MAX_PRICE_MINOR).contains(&price_minor) {
            return Err(ShopError::invalid(format!(
                "price_minor must be between 0 and {MAX_PRICE_MINOR}"
            )));
        }
        let stock = request.stock.unwrap_or(0);
        if !(0..=i64::from(MAX_STOCK)).contains(&stock) {
            return Err(ShopError::invalid(format!(
                "stock must be between 0 and {MAX_STOCK}"
            )));
        }
        Ok(Self {
            name: text("name", request.name, 200)?,
            description: optional_text("description", request.description, 5000)?,
            category: category(request.category)?,
            price_minor,
            stock: stock as i32,
        })
    }
}

/// Categories are short lowercase slugs, so that a category page is one index range.
pub fn category(value: Option<String>) -> Result<String, ShopError> {
    let value = text("category", value, 64)?;
    if !value
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
    {
        return Err(ShopError::invalid(
            "category must be lowercase letters, digits and '-'",
        ));
    }
    Ok(value)
}

/// A customer record as sent by its user.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CustomerRequest {
    pub name: Option<String>,
    pub email: Option<String>,
    pub address: Option<String>,
}

#[derive(Debug, Clone)]
pub struct CustomerFields {
    pub name: String,
    pub email: String,
    pub address: String,
}

impl CustomerFields {
    pub fn parse(request: CustomerRequest) -> Result<Self, ShopError> {
        let email = text("email", request.email, 320)?;
        let at = email.find('@');
        if at.is_none_or(|at| at == 0 || at == email.len() - 1)
            || email.contains(char::is_whitespace)
        {
            return Err(ShopError::invalid("email must look like name@domain"));
        }
        Ok(Self {
            name: text("name", request.name, 200)?,
            email,
            address: optional_text("address", request.address, 1000)?,
        })
    }
}

/// A cart line's quantity: 1..=1000, or 0 to remove the line.
pub fn quantity(value: Option<i64>) -> Result<i32, ShopError> {
    let value = value.ok_or_else(|| ShopError::invalid("quantity is required"))?;
    if !(0..=i64::from(MAX_QUANTITY)).contains(&value) {
        return Err(ShopError::invalid(format!(
            "quantity must be between 0 (remove) and {MAX_QUANTITY}"
        )));
    }
    Ok(value as i32)
}

/// A page: up to `limit` items with ids below `before` (newest first).
#[derive(Debug, Clone, Copy)]
pub struct Page {
    pub before: i64,
    pub limit: i64,
}

impl Page {
    pub fn parse(before: Option<String>, limit: Option<String>) -> Result<Self, ShopError> {
        let before = match before {
            Some(text) => agora_platform::ids::parse(&text)
                .ok_or_else(|| ShopError::invalid("before must be an id"))?,
            None => i64::MAX,
        };
        let limit = match limit {
            Some(text) => text
                .parse::<i64>()
                .ok()
                .filter(|limit| (1..=MAX_PAGE).contains(limit))
                .ok_or_else(|| {
                    ShopError::invalid(format!("limit must be between 1 and {MAX_PAGE}"))
                })?,
            None => DEFAULT_PAGE,
        };
        Ok(Self { before, limit })
    }
}

/// An order's life: created → paid → shipped, or cancelled before it ships.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OrderState {
    Created,
    Paid,
    Shipped,
    Cancelled,
}

impl OrderState {
    pub fn as_str(self) -> &'static str {
        match self {
            OrderState::Created => "created",
            OrderState::Paid => "paid",
            OrderState::Shipped => "shipped",
            OrderState::Cancelled => "cancelled",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        Some(match text {
            "created" => OrderState::Created,
            "paid" => OrderState::Paid,
            "shipped" => OrderState::Shipped,
            "cancelled" => OrderState::Cancelled,
            _ => return None,
        })
    }
}

/// A move of an order's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OrderAction {
    Pay,
    Ship,
    Cancel,
}

impl OrderAction {
    /// The states the action starts from, and where it leads.
    pub fn transition(self) -> (&'static [OrderState], OrderState) {
        match self {
            OrderAction::Pay => (&[OrderState::Created], OrderState::Paid),
            OrderAction::Ship => (&[OrderState::Paid], OrderState::Shipped),
            OrderAction::Cancel => (
                &[OrderState::Created, OrderState::Paid],
                OrderState::Cancelled,
            ),
        }
    }

    pub fn verb(self) -> &'static str {
        match self {
            OrderAction::Pay => "paid",
            OrderAction::Ship => "shipped",
            OrderAction::Cancel => "cancelled",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cancel_is_allowed_until_shipping() {
        let (from, to) = OrderAction::Cancel.transition();
        assert_eq!(to, OrderState::Cancelled);
        assert!(from.contains(&OrderState::Paid));
        assert!(!from.contains(&OrderState::Shipped));
    }

    #[test]
    fn quantities_and_prices_are_bounded() {
        assert!(quantity(Some(0)).is_ok());
        assert!(quantity(Some(1001)).is_err());
        assert!(quantity(Some(-1)).is_err());
        let product = |price| ProductRequest {
            name: Some("Tea".into()),
            description: None,
            category: Some("tea".into()),
            price_minor: Some(price),
            stock: Some(5),
        };
        assert!(ProductFields::parse(product(100)).is_ok());
        assert!(ProductFields::parse(product(-1)).is_err());
        assert!(category(Some("Tea Pots".into())).is_err());
        let with_nul = ProductRequest {
            description: Some("a\0b".into()),
            ..product(100)
        };
        assert!(ProductFields::parse(with_nul).is_err());
    }
}
