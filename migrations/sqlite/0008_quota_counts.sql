-- Per-account quotas (IMANGOR_QUOTA_RESOURCES, IMANGOR_QUOTA_SECRETS): how many resources and
-- secrets each account holds, kept by triggers on every insert and delete whatever its path, so
-- that a create reads one row instead of counting the account's rows.
alter table users add column resource_count bigint not null default 0;
alter table users add column secret_count bigint not null default 0;
update users set
    resource_count = (select count(*) from resources r where r.owner_id = users.id),
    secret_count = (select count(*) from secrets s where s.owner_id = users.id);

create trigger resources_count_insert after insert on resources
begin
    update users set resource_count = resource_count + 1 where id = new.owner_id;
end;
create trigger resources_count_delete after delete on resources
begin
    update users set resource_count = resource_count - 1 where id = old.owner_id;
end;
create trigger secrets_count_insert after insert on secrets
begin
    update users set secret_count = secret_count + 1 where id = new.owner_id;
end;
create trigger secrets_count_delete after delete on secrets
begin
    update users set secret_count = secret_count - 1 where id = old.owner_id;
end;
