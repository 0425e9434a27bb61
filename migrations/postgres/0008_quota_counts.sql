-- Per-account quotas (IMANGOR_QUOTA_RESOURCES, IMANGOR_QUOTA_SECRETS): how many resources and
-- secrets each account holds, kept by triggers on every insert and delete whatever its path, so
-- that a create reads one row instead of counting the account's rows.
-- During a rolling upgrade the old replicas keep inserting and deleting: the share lock waits
-- for their open writes and holds new ones until the triggers exist, so the backfill misses none.
lock table resources, secrets in share mode;
alter table users
    add column resource_count bigint not null default 0,
    add column secret_count bigint not null default 0;
update users set
    resource_count = (select count(*) from resources r where r.owner_id = users.id),
    secret_count = (select count(*) from secrets s where s.owner_id = users.id);

create function imangor_count_owned() returns trigger language plpgsql as $$
begin
    if tg_table_name = 'resources' then
        if tg_op = 'INSERT' then
            update users set resource_count = resource_count + 1 where id = new.owner_id;
        else
            update users set resource_count = resource_count - 1 where id = old.owner_id;
        end if;
    else
        if tg_op = 'INSERT' then
            update users set secret_count = secret_count + 1 where id = new.owner_id;
        else
            update users set secret_count = secret_count - 1 where id = old.owner_id;
        end if;
    end if;
    return null;
end
$$;
create trigger resources_count after insert or delete on resources
    for each row execute function imangor_count_owned();
create trigger secrets_count after insert or delete on secrets
    for each row execute function imangor_count_owned();
