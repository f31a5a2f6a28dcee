-- The quickstart schema: the product brief's customers and orders, both tenant-scoped.
CREATE TABLE customers (
  id          serial PRIMARY KEY,
  tenant_id   integer NOT NULL,
  name        varchar(120) NOT NULL,
  email       varchar(120) NOT NULL,
  phone       varchar(40),
  api_secret  varchar(64)
);
CREATE INDEX customers_tenant_id_idx ON customers (tenant_id);

CREATE TABLE orders (
  id           serial PRIMARY KEY,
  tenant_id    integer NOT NULL,
  customer_id  integer NOT NULL REFERENCES customers (id),
  total_cents  integer NOT NULL,
  status       varchar(20) NOT NULL DEFAULT 'pending',
  created_at   timestamp NOT NULL DEFAULT now()
);
CREATE INDEX orders_tenant_id_idx ON orders (tenant_id);
