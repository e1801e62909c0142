-- Customer profile: average monthly usage and spend over the months on file.
-- Runs unchanged on Redshift and, with the compatibility functions etl installs, on PostgreSQL.
-- The averaged values are cast to decimal(18,6) first: Redshift's AVG of an integer is a truncated
-- BIGINT and its AVG of a decimal(p,s) keeps scale s, where PostgreSQL's AVG is exact; with six
-- decimals both round the same way in the casts to one and two decimals.

create schema if not exists model;

drop table if exists model.customer_profile;

create table model.customer_profile as
select
    u.customer_id,
    count(*)                                                          as months,
    avg(nvl(u.data_mb, 0)::decimal(18,6))::decimal(12,1)              as avg_data_mb,
    avg(nvl(u.voice_minutes, 0)::decimal(18,6))::decimal(12,1)        as avg_voice_minutes,
    avg(nvl(u.sms_count, 0)::decimal(18,6))::decimal(12,1)            as avg_sms,
    max(nvl(u.roaming_mb, 0))                                         as max_roaming_mb,
    avg((b.amount + nvl(b.overage, 0))::decimal(18,6))::decimal(12,2) as avg_spend,
    max(b.plan_code)                                                  as current_plan,
    max(nvl(b.segment, 'unknown'))                                    as segment
from staging.usage u
join staging.billing b
  on b.customer_id = u.customer_id
 and b.month = u.month
group by u.customer_id;
