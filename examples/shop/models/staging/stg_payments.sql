select
    id as payment_id,
    order_id,
    payment_method,
    -- amounts are stored in cents in the source
    cast(amount / 100.0 as decimal(10, 2)) as amount
from {{ ref('raw_payments') }}
