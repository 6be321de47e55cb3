-- The shop's schema. pgpool-II's native replication runs every write statement on every
-- backend, so nothing here may differ between them: ids and timestamps come from the
-- application as parameters (no sequences, no now() defaults, no random()).

-- The catalog. Money is in minor units (kopecks, cents): integers add up exactly.
CREATE TABLE products (
    id          bigint      PRIMARY KEY,
    seller_id   bigint      NOT NULL,
    name        text        NOT NULL,
    description text        NOT NULL,
    category    text        NOT NULL,
    price_minor bigint      NOT NULL CHECK (price_minor >= 0),
    stock       integer     NOT NULL CHECK (stock >= 0),
    created_at  timestamptz NOT NULL,
    updated_at  timestamptz NOT NULL
);
-- Browsing a category page by page, newest first.
CREATE INDEX products_category_id_idx ON products (category, id DESC);

-- The shop's customer records, one per platform user.
CREATE TABLE customers (
    user_id    bigint      PRIMARY KEY,
    name       text        NOT NULL,
    email      text        NOT NULL,
    address    text        NOT NULL,
    created_at timestamptz NOT NULL,
    updated_at timestamptz NOT NULL
);

-- Carts when they live in PostgreSQL (AGORA_SHOP_CARTS=postgres); in Redis otherwise.
CREATE TABLE cart_lines (
    user_id    bigint      NOT NULL,
    product_id bigint      NOT NULL REFERENCES products (id) ON DELETE CASCADE,
    quantity   integer     NOT NULL CHECK (quantity > 0),
    updated_at timestamptz NOT NULL,
    PRIMARY KEY (user_id, product_id)
);
CREATE INDEX cart_lines_product_id_idx ON cart_lines (product_id);

CREATE TABLE orders (
    id          bigint      PRIMARY KEY,
    user_id     bigint      NOT NULL,
    state       text        NOT NULL CHECK (state IN ('created', 'paid', 'shipped', 'cancelled')),
    total_minor bigint      NOT NULL CHECK (total_minor >= 0),
    created_at  timestamptz NOT NULL,
    updated_at  timestamptz NOT NULL
);
CREATE INDEX orders_user_id_id_idx ON orders (user_id, id DESC);

-- A line keeps the product's name and price at order time: later changes to the catalog (or
-- the product's removal) do not rewrite history.
CREATE TABLE order_lines (
    order_id    bigint  NOT NULL REFERENCES orders (id) ON DELETE CASCADE,
    product_id  bigint  NOT NULL,
    name        text    NOT NULL,
    price_minor bigint  NOT NULL CHECK (price_minor >= 0),
    quantity    integer NOT NULL CHECK (quantity > 0),
    PRIMARY KEY (order_id, product_id)
);

-- Replies to writes sent with an Idempotency-Key: a retry gets the stored reply, the same key
-- with another request is refused.
CREATE TABLE idempotency_keys (
    user_id      bigint      NOT NULL,
    key          text        NOT NULL,
    request_hash bytea       NOT NULL,
    status       smallint,
    body         text,
    created_at   timestamptz NOT NULL,
    PRIMARY KEY (user_id, key)
);
CREATE INDEX idempotency_keys_created_at_idx ON idempotency_keys (created_at);
