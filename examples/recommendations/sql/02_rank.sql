-- Rank the active offers per customer: the expected monthly cost of an offer is its fee plus the
-- data overage the customer's average usage would incur; offers that don't cover voice and SMS are
-- skipped. Keep the three cheapest; ties go to the lower fee, then the offer code.

drop table if exists model.recommendations;

create table model.recommendations as
with costed as (
    select
        p.customer_id,
        o.offer_code,
        o.name as offer_name,
        p.avg_spend as current_monthly_spend,
        (o.monthly_fee
         + case when p.avg_data_mb > o.data_mb
                then ceil((p.avg_data_mb - o.data_mb) / 1024.0) * nvl(o.overage_per_gb, 10.00)
                else 0 end)::decimal(12,2) as expected_monthly_cost,
        o.monthly_fee
    from model.customer_profile p
    cross join staging.offers o
    where o.active
      and o.voice_minutes >= p.avg_voice_minutes
      and o.sms_count >= p.avg_sms
      and len(o.offer_code) > 0
)
select
    customer_id,
    rank,
    offer_code,
    offer_name,
    current_monthly_spend,
    expected_monthly_cost,
    (current_monthly_spend - expected_monthly_cost)::decimal(12,2) as monthly_saving
from (
    select c.*,
           row_number() over (partition by customer_id
                              order by expected_monthly_cost, monthly_fee, offer_code) as rank
    from costed c
) ranked
where rank <= 3;
