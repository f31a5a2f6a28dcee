-- Demo and test data: tenant 1 (Acme) and tenant 2 (Globex), visibly different.
INSERT INTO customers (tenant_id, name, email, phone, api_secret) VALUES
  (1, 'Acme Corp',      'jane@acme.com',      '555-0100', 'sk_live_ACME_DO_NOT_LEAK'),
  (1, 'Acme Labs',      'joe@acmelabs.com',   '555-0101', 'sk_live_ACMELABS_DO_NOT_LEAK'),
  (1, 'Acme Retail',    'ann@acmeretail.com', NULL,       NULL),
  (2, 'Globex Inc',     'hank@globex.com',    '555-0200', 'sk_live_GLOBEX_DO_NOT_LEAK'),
  (2, 'Globex Shipping','lisa@globexship.com','555-0201', 'sk_live_GLOBEXSHIP_DO_NOT_LEAK');

INSERT INTO orders (tenant_id, customer_id, total_cents, status) VALUES
  (1, 1, 10000, 'pending'),
  (1, 1, 20000, 'paid'),
  (1, 2,  4500, 'paid'),
  (1, 3,  7300, 'cancelled'),
  (2, 4, 990000, 'paid'),
  (2, 4, 123400, 'pending'),
  (2, 5,  55500, 'paid');
