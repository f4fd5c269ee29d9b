{#- promote / rollback / live: the red/green switch of a context's live schema.

    `dot_promote(plan)` runs every statement of one promotion in ONE transaction
    (dbt opens it with the first query; nothing is committed until the
    `adapter.commit()` at the end, and a macro that fails or returns a refusal
    is rolled back when dbt releases the connection). The decisions that depend
    on what the warehouse holds are taken here, under the promotion lock, so
    nothing can change between looking and switching.

    The plan (made in Python by dot_tasks.deploy) is:
      live_schema   the context's own schema, which holds dot_promotions
      live_schemas  every live schema the build maps to (analytics, analytics_marts)
      build_schemas the build's schemas
      relations     [[build_schema, live_schema, name], ...]
      replace_existing, expect_live, lock_wait_seconds
      row           the history row (context, commit, short, refs, ...)

    Names are compared lower-cased: dbt's own relation names are, and DuckDB
    matches case-insensitively. -#}

{% macro dot_lit(value) -%}
  {%- if value is none -%}null{%- else -%}'{{ (value | string).replace("'", "''") }}'{%- endif -%}
{%- endmacro %}

{% macro dot_rel(schema, name) -%}
  {#- schema.relation, never database.schema.relation: a DuckDB database name is
      the file's alias, which changes when the file is attached under another name. -#}
  {{ adapter.quote(schema) }}.{{ adapter.quote(name) }}
{%- endmacro %}

{#- A relation's key: its schema lower-cased, its name as the warehouse compares
    names (case-sensitively on PostgreSQL, where "A" and a are two relations). -#}
{% macro dot_key(schema, name) -%}
  {{ (schema | lower) ~ '.' ~ (name if dot_case_sensitive() else name | lower) }}
{%- endmacro %}

{% macro dot_case_sensitive() %}
  {{ return(adapter.dispatch('dot_case_sensitive', 'dot_tasks_ops')()) }}
{% endmacro %}

{% macro default__dot_case_sensitive() %}{{ return(false) }}{% endmacro %}

{% macro postgres__dot_case_sensitive() %}{{ return(true) }}{% endmacro %}

{% macro dot_in_exact(values) -%}
  ({%- for v in values -%}{{ dot_lit(v) }}{{ ", " if not loop.last }}{%- endfor -%})
{%- endmacro %}

{% macro dot_in_list(values) -%}
  ({%- for v in values -%}{{ dot_lit(v | lower) }}{{ ", " if not loop.last }}{%- endfor -%})
{%- endmacro %}


{#- The promotion lock inside the warehouse: one promotion per live schema, also
    between machines. Transaction-scoped, so a killed promotion frees it.
    `wait` bounds how long it waits for another machine's promotion. -#}
{% macro dot_take_promotion_lock(live_schema, wait) %}
  {{ return(adapter.dispatch('dot_take_promotion_lock', 'dot_tasks_ops')(live_schema, wait)) }}
{% endmacro %}

{#- Both open the promotion's one transaction: every query after this, reads
    included, runs inside it until dot_promote commits. -#}
{% macro default__dot_take_promotion_lock(live_schema, wait) %}
  {#- DuckDB admits one writer per file; dot-tasks holds a file lock as well. -#}
  {% call statement('dot_begin', auto_begin=True) %}select 1{% endcall %}
{% endmacro %}

{% macro postgres__dot_take_promotion_lock(live_schema, wait) %}
  {#- dbt-postgres sends no BEGIN (it leaves that to psycopg2), and the COMMIT it
      sends when it hands out the connection leaves psycopg2 believing a
      transaction is open: without this explicit `begin`, every statement of the
      macro would commit on its own, and the advisory lock would be let go at once. -#}
  {% call statement('dot_promotion_lock', auto_begin=True) %}
    begin;
    set local lock_timeout = '{{ wait | int }}s';
    select pg_advisory_xact_lock(hashtext({{ dot_lit('dot-tasks promote ' ~ (live_schema | lower)) }}))
  {% endcall %}
{% endmacro %}


{#- The id of the transaction the promotion runs in (none where the warehouse
    has no such notion): the same at the first and the last statement, or a
    statement committed on its own. -#}
{% macro dot_transaction_id() %}
  {{ return(adapter.dispatch('dot_transaction_id', 'dot_tasks_ops')()) }}
{% endmacro %}

{% macro default__dot_transaction_id() %}
  {{ return(none) }}
{% endmacro %}

{% macro postgres__dot_transaction_id() %}
  {{ return(run_query("select txid_current()")[0][0]) }}
{% endmacro %}

{% macro duckdb__dot_transaction_id() %}
  {{ return(run_query("select txid_current()")[0][0]) }}
{% endmacro %}


{#- {"schema.name": "view" | "table" | "materialized view" | ...} for the relations in `schemas`. -#}
{% macro dot_existing_relations(schemas) %}
  {{ return(adapter.dispatch('dot_existing_relations', 'dot_tasks_ops')(schemas)) }}
{% endmacro %}

{% macro default__dot_existing_relations(schemas) %}
  {% set rows = run_query(
      "select table_schema, table_name, table_type from information_schema.tables"
      ~ " where table_catalog = " ~ dot_lit(target.database)
      ~ " and lower(table_schema) in " ~ dot_in_list(schemas)) %}
  {% set found = {} %}
  {% for row in rows %}
    {% do found.update({dot_key(row[0], row[1]): ('view' if row[2] | upper == 'VIEW' else 'table')}) %}
  {% endfor %}
  {{ return(found) }}
{% endmacro %}

{% macro postgres__dot_existing_relations(schemas) %}
  {#- pg_class, not information_schema: it also shows materialized views, and
      relations owned by other roles. -#}
  {% set rows = run_query(
      "select n.nspname, c.relname, c.relkind from pg_class c join pg_namespace n on n.oid = c.relnamespace"
      ~ " where c.relkind in ('r', 'p', 'v', 'm', 'f') and lower(n.nspname) in " ~ dot_in_list(schemas)) %}
  {% set kinds = {'r': 'table', 'p': 'table', 'v': 'view', 'm': 'materialized view', 'f': 'foreign table'} %}
  {% set found = {} %}
  {% for row in rows %}
    {% do found.update({dot_key(row[0], row[1]): kinds[row[2]]}) %}
  {% endfor %}
  {{ return(found) }}
{% endmacro %}


{#- {"schema.name": ["column type", ...]} where a view's shape constrains its
    replacement (PostgreSQL's CREATE OR REPLACE VIEW cannot drop or retype a
    column); none where any shape can replace any other (DuckDB). -#}
{% macro dot_columns(schemas) %}
  {{ return(adapter.dispatch('dot_columns', 'dot_tasks_ops')(schemas)) }}
{% endmacro %}

{% macro default__dot_columns(schemas) %}
  {{ return(none) }}
{% endmacro %}

{% macro postgres__dot_columns(schemas) %}
  {% set rows = run_query(
      "select n.nspname, c.relname, a.attname, format_type(a.atttypid, a.atttypmod)"
      ~ " from pg_attribute a join pg_class c on c.oid = a.attrelid join pg_namespace n on n.oid = c.relnamespace"
      ~ " where a.attnum > 0 and not a.attisdropped and c.relkind in ('r', 'p', 'v', 'm', 'f')"
      ~ " and lower(n.nspname) in " ~ dot_in_list(schemas)
      ~ " order by n.nspname, c.relname, a.attnum") %}
  {% set columns = {} %}
  {% for row in rows %}
    {% set key = dot_key(row[0], row[1]) %}
    {% if key not in columns %}{% do columns.update({key: []}) %}{% endif %}
    {% do columns[key].append(row[2] ~ ' ' ~ row[3]) %}
  {% endfor %}
  {{ return(columns) }}
{% endmacro %}


{#- [[dependant schema, dependant name, schema, name], ...]: views (of anyone)
    built on the relations `keys`, which a plain DROP would refuse to drop, and
    which dot-tasks never drops with CASCADE. -#}
{% macro dot_dependants(keys) %}
  {{ return(adapter.dispatch('dot_dependants', 'dot_tasks_ops')(keys)) }}
{% endmacro %}

{% macro default__dot_dependants(keys) %}
  {#- DuckDB records no dependencies between views: dropping one never fails. -#}
  {{ return([]) }}
{% endmacro %}

{% macro postgres__dot_dependants(keys) %}
  {% if not keys %}{{ return([]) }}{% endif %}
  {% set rows = run_query(
      "select distinct dn.nspname, dc.relname, n.nspname, c.relname"
      ~ " from pg_depend d join pg_rewrite r on r.oid = d.objid"
      ~ " join pg_class dc on dc.oid = r.ev_class join pg_namespace dn on dn.oid = dc.relnamespace"
      ~ " join pg_class c on c.oid = d.refobjid join pg_namespace n on n.oid = c.relnamespace"
      ~ " where d.classid = 'pg_rewrite'::regclass and d.refclassid = 'pg_class'::regclass"
      ~ " and dc.oid <> c.oid and lower(n.nspname) || '.' || c.relname in " ~ dot_in_exact(keys)
      ~ " order by 1, 2") %}
  {% set found = [] %}
  {% for row in rows %}{% do found.append([row[0], row[1], row[2], row[3]]) %}{% endfor %}
  {{ return(found) }}
{% endmacro %}


{#- Take the locks of every live relation the switch will replace or drop, all
    of them before changing any, and keep them to the commit: a reader that has
    read one old view (and holds it) finishes on the old views, and one that
    has not yet read any reads only new ones.

    A reader that reads two live views can hold the one we wait for while it
    waits for one we hold: a cycle. Each attempt waits at most a quarter of the
    server's deadlock_timeout, so the promotion gives way (its attempt, a
    subtransaction, is rolled back and lets go of every lock it took) before
    the deadlock detector could choose the reader; it tries again after a
    growing, jittered pause. Waiting in the queue (rather than NOWAIT) keeps a
    steady stream of new readers from starving it. Returns the number of
    attempts; a wait longer than `wait` seconds gives up, changing nothing. -#}
{% macro dot_lock_relations(keys_and_rels, wait) %}
  {{ return(adapter.dispatch('dot_lock_relations', 'dot_tasks_ops')(keys_and_rels, wait)) }}
{% endmacro %}

{% macro default__dot_lock_relations(keys_and_rels, wait) %}
  {{ return(1) }}
{% endmacro %}

{% macro postgres__dot_lock_relations(keys_and_rels, wait) %}
  {% if not keys_and_rels %}{{ return(1) }}{% endif %}
  {% set ns = namespace(attempts=0, waited=0, locked=false) %}
  {% set step = 5 %}
  {% for chunk in range(((wait | int) // step) + 1) %}
    {% call statement('dot_lock_live_relations') %}
do $dot$
declare
  chunk_end timestamptz := clock_timestamp() + interval '{{ step }} seconds';
  pause float := 0.01;
  tries int := coalesce(nullif(current_setting('dot_tasks.lock_attempts', true), ''), '0')::int;
  locked boolean := false;
begin
  perform set_config('lock_timeout',
    greatest(1, least(200, (select setting::int from pg_settings where name = 'deadlock_timeout') / 4)) || 'ms', true);
  loop
    tries := tries + 1;
    begin
      lock table {{ keys_and_rels | join(', ') }} in access exclusive mode;
      locked := true;
    exception when lock_not_available then
      locked := false;
    end;
    exit when locked or clock_timestamp() > chunk_end;
    perform pg_sleep(pause * (0.5 + random()));
    pause := least(pause * 2, 0.25);
  end loop;
  perform set_config('dot_tasks.lock_attempts', tries::text, true);
  perform set_config('dot_tasks.locked', case when locked then 'on' else 'off' end, true);
end
$dot$
    {% endcall %}
    {% set state = run_query("select current_setting('dot_tasks.locked'), current_setting('dot_tasks.lock_attempts')") %}
    {% set ns.attempts = state[0][1] | int %}
    {% if state[0][0] == 'on' %}{% set ns.locked = true %}{% break %}{% endif %}
    {% set ns.waited = ns.waited + step %}
    {% set holders = run_query(
        "select distinct a.pid, coalesce(a.application_name, ''), coalesce(a.usename, ''),"
        ~ " cast(date_trunc('second', now() - a.xact_start) as text)"
        ~ " from pg_locks l join pg_stat_activity a on a.pid = l.pid"
        ~ " where l.granted and l.pid <> pg_backend_pid() and l.relation in ("
        ~ dot_regclasses(keys_and_rels) ~ ") order by 1 limit 5") %}
    {% set who = [] %}
    {% for h in holders %}{% do who.append("pid " ~ h[0] ~ " (" ~ h[2] ~ ", " ~ (h[1] or 'no application name') ~ ", in a transaction for " ~ h[3] ~ ")") %}{% endfor %}
    {{ print("dot-tasks: waiting for readers of the live views to finish (" ~ ns.waited ~ "s of " ~ (wait | int) ~ "s): " ~ (who | join(", ") or "none seen now")) }}
  {% endfor %}
  {% if not ns.locked %}
    {% do exceptions.raise_compiler_error("readers held the live views for " ~ (wait | int) ~ "s: the promotion gave up and changed nothing") %}
  {% endif %}
  {{ return(ns.attempts) }}
{% endmacro %}

{% macro dot_regclasses(rels) -%}
  {%- for rel in rels -%}{{ dot_lit(rel) }}::regclass{{ ", " if not loop.last }}{%- endfor -%}
{%- endmacro %}


{% macro dot_history_columns() -%}
  seq {{ dbt.type_int() }},
  promoted_at {{ dbt.type_timestamp() }},
  action {{ dbt.type_string() }},
  context {{ dbt.type_string() }},
  commit_sha {{ dbt.type_string() }},
  short {{ dbt.type_string() }},
  refs {{ dbt.type_string() }},
  promoted_by {{ dbt.type_string() }},
  previous_commit {{ dbt.type_string() }},
  node_count {{ dbt.type_int() }},
  gate_overridden {{ dbt.type_boolean() }},
  build_schema {{ dbt.type_string() }},
  relations {{ dbt.type_string() }}
{%- endmacro %}


{#- The statement that points the live view `schema.name` at the build's
    `build_schema.name`; `exists` when the view is there now and stays. -#}
{% macro dot_point_view(schema, name, build_schema, exists) %}
  {{ return(adapter.dispatch('dot_point_view', 'dot_tasks_ops')(schema, name, build_schema, exists)) }}
{% endmacro %}

{% macro default__dot_point_view(schema, name, build_schema, exists) %}
  {{ return("create or replace view " ~ dot_rel(schema, name) ~ " as select * from " ~ dot_rel(build_schema, name)) }}
{% endmacro %}


{#- Live views that a promotion killed in the middle of its switch made
    before it could record them: only where the switch is not one
    transaction (Spark). Elsewhere a kill rolls the switch back. -#}
{% macro dot_left_by_an_interrupted_switch(relations, existing, owned) %}
  {{ return(adapter.dispatch('dot_left_by_an_interrupted_switch', 'dot_tasks_ops')(relations, existing, owned)) }}
{% endmacro %}

{% macro default__dot_left_by_an_interrupted_switch(relations, existing, owned) %}
  {{ return([]) }}
{% endmacro %}


{#- The end of the promotion's one transaction. -#}
{% macro dot_commit_switch(live_schema) %}
  {{ return(adapter.dispatch('dot_commit_switch', 'dot_tasks_ops')(live_schema)) }}
{% endmacro %}

{% macro default__dot_commit_switch(live_schema) %}
  {{ print("dot-tasks: committing the switch of " ~ live_schema) }}
  {% do adapter.commit() %}
{% endmacro %}


{#- Creating the history table if need be, and adding one row to it. -#}
{% macro dot_history_statements(live, row, action, previous, relations) %}
  {% set history = dot_rel(live, 'dot_promotions') %}
  {{ return([
      "create table if not exists " ~ history ~ " (" ~ dot_history_columns() ~ ")",
      "insert into " ~ history ~ " (seq, promoted_at, action, context, commit_sha, short, refs, promoted_by,"
      ~ " previous_commit, node_count, gate_overridden, build_schema, relations)"
      ~ " select coalesce(max(seq), 0) + 1, cast(" ~ dot_lit(row['promoted_at']) ~ " as " ~ dbt.type_timestamp() ~ "), "
      ~ dot_lit(action) ~ ", " ~ dot_lit(row['context']) ~ ", " ~ dot_lit(row['commit']) ~ ", "
      ~ dot_lit(row['short']) ~ ", " ~ dot_lit(row['refs']) ~ ", " ~ dot_lit(row['promoted_by']) ~ ", "
      ~ dot_lit(previous) ~ ", " ~ (relations | length) ~ ", "
      ~ ('true' if row['gate_overridden'] else 'false') ~ ", " ~ dot_lit(row['build_schema']) ~ ", "
      ~ dot_lit(tojson(relations)) ~ " from " ~ history]) }}
{% endmacro %}


{#- The newest row of dot_promotions, or none. -#}
{% macro dot_latest_promotion(live_schema, existing) %}
  {% if dot_key(live_schema, 'dot_promotions') not in existing %}{{ return(none) }}{% endif %}
  {% set rows = run_query(
      "select commit_sha, relations, context, seq, previous_commit, action, short, build_schema from "
      ~ dot_rel(live_schema, 'dot_promotions')
      ~ " order by seq desc limit 1") %}
  {% if rows | length == 0 %}{{ return(none) }}{% endif %}
  {{ return({'commit': rows[0][0], 'relations': fromjson(rows[0][1] or '[]'), 'context': rows[0][2],
             'seq': rows[0][3], 'previous': rows[0][4], 'action': rows[0][5], 'short': rows[0][6],
             'build_schema': rows[0][7]}) }}
{% endmacro %}


{% macro dot_promote(plan) %}
  {% set live = plan['live_schema'] %}
  {% do dot_take_promotion_lock(live, plan.get('lock_wait_seconds', 60) + 30) %}
  {% set first_transaction = dot_transaction_id() %}
  {{ print("dot-tasks: promotion lock taken for " ~ live) }}
  {% set existing = dot_existing_relations(plan['live_schemas'] + plan['build_schemas'] + [live]) %}
  {% set latest = dot_latest_promotion(live, existing) %}
  {% set previous = latest['commit'] if latest else none %}
  {% set wanted = plan['row']['commit'] %}
  {% if plan.get('rollback') == 'previous' and (not latest or latest['previous'] != wanted) %}
    {#- Planned against what this machine last saw; the warehouse says otherwise. -#}
    {{ return({'refusal': 'moved', 'live': previous, 'previous': latest['previous'] if latest else none}) }}
  {% endif %}
  {% if plan.get('rollback') == 'was live' %}
    {% set seen = run_query("select count(*) from " ~ dot_rel(live, 'dot_promotions') ~ " where commit_sha = " ~ dot_lit(wanted))
       if dot_key(live, 'dot_promotions') in existing else none %}
    {% if seen is none or seen[0][0] == 0 %}
      {{ return({'refusal': 'never live', 'live': previous}) }}
    {% endif %}
  {% endif %}
  {% set retired = latest and latest['action'] == 'retire' %}
  {% if plan.get('rollback') and previous == wanted and not retired %}
    {{ return({'refusal': 'already live', 'live': previous}) }}
  {% endif %}
  {#- Promoting the commit already live repairs drift: the history keeps the
      real previous release, so a rollback after it still returns there. -#}
  {% set action = 'repair' if (not plan.get('rollback') and previous == wanted and not retired) else plan['row']['action'] %}
  {% set recorded_previous = latest['previous'] if action == 'repair' else previous %}

  {#- What the previous promotion made: the only relations dot-tasks may drop. -#}
  {% set owned = [] %}
  {% for rel in (latest['relations'] if latest else []) %}
    {% do owned.append(dot_key(rel[1], rel[2])) %}
  {% endfor %}

  {% set owned = owned + dot_left_by_an_interrupted_switch(plan['relations'], existing, owned) %}

  {% set planned = [] %}
  {% set missing = [] %}
  {% set conflicts = [] %}
  {% set replace_in_place = [] %}
  {% set replace_user = [] %}
  {% set create_new = [] %}
  {% for rel in plan['relations'] %}
    {% set key = dot_key(rel[1], rel[2]) %}
    {% do planned.append(key) %}
    {% if dot_key(rel[0], rel[2]) not in existing %}
      {% do missing.append(rel[0] ~ '.' ~ rel[2]) %}
    {% elif key not in existing %}
      {% do create_new.append(rel) %}
    {% elif existing[key] == 'view' and key in owned %}
      {% do replace_in_place.append(rel) %}
    {% else %}
      {% do conflicts.append([rel[1] ~ '.' ~ rel[2], existing[key]]) %}
      {% do replace_user.append(rel + [existing[key]]) %}
    {% endif %}
  {% endfor %}
  {% if missing %}
    {{ return({'refusal': 'missing', 'relations': missing}) }}
  {% endif %}
  {% if conflicts and not plan['replace_existing'] %}
    {{ return({'refusal': 'not ours', 'relations': conflicts}) }}
  {% endif %}

  {#- Views the previous promotion made for nodes this build no longer has. -#}
  {% set drops = [] %}
  {% for rel in (latest['relations'] if latest else []) %}
    {% set key = dot_key(rel[1], rel[2]) %}
    {% if key not in planned and existing.get(key) == 'view' and rel not in drops %}
      {% do drops.append(rel) %}
    {% endif %}
  {% endfor %}

  {#- A view whose columns cannot be replaced in place is dropped and created again. -#}
  {% set recreate = [] %}
  {% set columns = dot_columns(plan['live_schemas'] + plan['build_schemas']) %}
  {% if columns is not none %}
    {% for rel in replace_in_place %}
      {% set old = columns.get(dot_key(rel[1], rel[2]), []) %}
      {% set new = columns.get(dot_key(rel[0], rel[2]), []) %}
      {% if new[:(old | length)] != old %}{% do recreate.append(rel) %}{% endif %}
    {% endfor %}
  {% endif %}

  {#- Everything the switch drops: its own views, and with --replace-existing
      what dbt built for the project's nodes (dbt's own views on dbt's own
      tables among them). A view that depends on one of them and is not
      dropped too stops the switch, named; the others go in dependency order. -#}
  {% set to_drop = [] %}
  {% set dropped_keys = [] %}
  {% for rel in drops + recreate %}{% do to_drop.append(rel[:3] + ['view']) %}{% endfor %}
  {% for rel in replace_user %}{% do to_drop.append(rel) %}{% endfor %}
  {% for rel in to_drop %}{% do dropped_keys.append(dot_key(rel[1], rel[2])) %}{% endfor %}
  {% set blocking = [] %}
  {% set inner = [] %}
  {% for d in dot_dependants(dropped_keys) %}
    {% if dot_key(d[0], d[1]) in dropped_keys %}
      {% do inner.append([dot_key(d[0], d[1]), dot_key(d[2], d[3])]) %}
    {% else %}
      {% do blocking.append(d) %}
    {% endif %}
  {% endfor %}
  {% if blocking %}
    {{ return({'refusal': 'dependants', 'relations': blocking}) }}
  {% endif %}
  {% set ordered = [] %}
  {% set done = [] %}
  {% for pass in to_drop %}
    {% for rel in to_drop %}
      {% set key = dot_key(rel[1], rel[2]) %}
      {% if key not in done %}
        {% set waiting = namespace(on=false) %}
        {% for pair in inner %}
          {% if pair[1] == key and pair[0] not in done %}{% set waiting.on = true %}{% endif %}
        {% endfor %}
        {% if not waiting.on %}{% do done.append(key) %}{% do ordered.append(rel) %}{% endif %}
      {% endif %}
    {% endfor %}
  {% endfor %}

  {% set to_lock = [] %}
  {% for rel in replace_in_place + drops + replace_user %}{% do to_lock.append(dot_rel(rel[1], rel[2])) %}{% endfor %}
  {% set lock_attempts = dot_lock_relations(to_lock, plan.get('lock_wait_seconds', 60)) %}
  {{ print("dot-tasks: switching " ~ plan['relations'] | length ~ " relation(s) of " ~ live ~ " to " ~ plan['row']['short']) }}

  {% set statements = [] %}
  {% set present = [] %}
  {% for key in existing %}{% do present.append(key.split('.')[0]) %}{% endfor %}
  {% for schema in plan['live_schemas'] %}
    {#- Only where nothing exists yet: CREATE SCHEMA needs a privilege even when it would do nothing. -#}
    {% if schema | lower not in present %}
      {% do statements.append("create schema if not exists " ~ adapter.quote(schema)) %}
    {% endif %}
  {% endfor %}
  {% for rel in ordered %}
    {% do statements.append("drop " ~ rel[3] ~ " " ~ dot_rel(rel[1], rel[2])) %}
  {% endfor %}
  {% for rel in plan['relations'] %}
    {% do statements.append(dot_point_view(rel[1], rel[2], rel[0], rel in replace_in_place and rel not in recreate)) %}
  {% endfor %}
  {% do statements.extend(dot_history_statements(live, plan['row'], action, recorded_previous, plan['relations'])) %}
  {% do dot_run_switch(statements) %}
  {#- Before the commit: every view of the live schemas that dot-tasks did not
      make must still work; if one does not, nothing is committed. -#}
  {% set broken = dot_broken_user_views(plan['live_schemas'], planned + [dot_key(live, 'dot_promotions')], dropped_keys) %}
  {% if broken %}
    {{ return({'refusal': 'broken', 'relations': broken}) }}
  {% endif %}
  {% set last_transaction = dot_transaction_id() %}
  {% do dot_commit_switch(live) %}
  {% set replaced_names = [] %}
  {% for c in conflicts %}{% do replaced_names.append(c[0]) %}{% endfor %}
  {% set dropped_names = [] %}
  {% for rel in drops %}{% do dropped_names.append(rel[1] ~ '.' ~ rel[2]) %}{% endfor %}
  {% set recreated_names = [] %}
  {% for rel in recreate %}{% do recreated_names.append(rel[1] ~ '.' ~ rel[2]) %}{% endfor %}
  {{ return({
      'previous': recorded_previous,
      'was_live': previous,
      'action': action,
      'created': create_new | length,
      'replaced': replace_in_place | length,
      'recreated': recreated_names,
      'dropped': dropped_names,
      'replaced_existing': replaced_names,
      'transaction': [first_transaction, last_transaction],
      'lock_attempts': lock_attempts,
  }) }}
{% endmacro %}


{#- `retire`: drop every view the last promotion made, in one transaction, and
    record it; everything else in the live schemas stays. Afterwards nothing
    is live, and a plain `dbt build` can use the schemas again. -#}
{% macro dot_retire(plan) %}
  {% set live = plan['live_schema'] %}
  {% do dot_take_promotion_lock(live, plan.get('lock_wait_seconds', 60) + 30) %}
  {% set first_transaction = dot_transaction_id() %}
  {% set latest = dot_latest_promotion(live, dot_existing_relations([live])) %}
  {% if not latest or latest['action'] == 'retire' %}
    {{ return({'refusal': 'nothing live'}) }}
  {% endif %}
  {% set schemas = [] %}
  {% for rel in latest['relations'] %}{% if rel[1] not in schemas %}{% do schemas.append(rel[1]) %}{% endif %}{% endfor %}
  {% set existing = dot_existing_relations(schemas + [live]) %}
  {% set views = [] %}
  {% set keys = [] %}
  {% for rel in latest['relations'] %}
    {% if existing.get(dot_key(rel[1], rel[2])) == 'view' %}
      {% do views.append(rel) %}{% do keys.append(dot_key(rel[1], rel[2])) %}
    {% endif %}
  {% endfor %}
  {% set blocking = [] %}
  {% for d in dot_dependants(keys) %}
    {% if dot_key(d[0], d[1]) not in keys %}{% do blocking.append(d) %}{% endif %}
  {% endfor %}
  {% if blocking %}
    {{ return({'refusal': 'dependants', 'relations': blocking}) }}
  {% endif %}
  {% set to_lock = [] %}
  {% for rel in views %}{% do to_lock.append(dot_rel(rel[1], rel[2])) %}{% endfor %}
  {% set lock_attempts = dot_lock_relations(to_lock, plan.get('lock_wait_seconds', 60)) %}
  {% set statements = [] %}
  {% for rel in views %}{% do statements.append("drop view " ~ dot_rel(rel[1], rel[2])) %}{% endfor %}
  {% set row = plan['row'] %}
  {% do row.update({'commit': latest['commit'], 'short': latest['short'], 'build_schema': latest['build_schema']}) %}
  {% do statements.extend(dot_history_statements(live, row, 'retire', latest['commit'], [])) %}
  {% do dot_run_switch(statements) %}
  {% set broken = dot_broken_user_views(schemas, [dot_key(live, 'dot_promotions')], keys) %}
  {% if broken %}
    {{ return({'refusal': 'broken', 'relations': broken}) }}
  {% endif %}
  {% set last_transaction = dot_transaction_id() %}
  {% do adapter.commit() %}
  {% set dropped = [] %}
  {% for rel in views %}{% do dropped.append(rel[1] ~ '.' ~ rel[2]) %}{% endfor %}
  {{ return({'retired': latest['commit'], 'short': latest['short'], 'dropped': dropped,
             'transaction': [first_transaction, last_transaction], 'lock_attempts': lock_attempts}) }}
{% endmacro %}


{#- The views of `schemas` that are not `ours` and no longer work, as
    "schema.name (why)". Runs inside the promotion's transaction, after the switch. -#}
{% macro dot_broken_user_views(schemas, ours, dropped) %}
  {{ return(adapter.dispatch('dot_broken_user_views', 'dot_tasks_ops')(schemas, ours, dropped)) }}
{% endmacro %}

{% macro default__dot_broken_user_views(schemas, ours, dropped) %}
  {#- DuckDB binds a view when it is read, and records no dependencies: a view
      that names a relation the switch dropped is broken. Any other failure
      fails the reading below, and so the whole promotion. -#}
  {% set broken = [] %}
  {% for view in dot_view_sources(schemas) %}
    {% set key = dot_key(view[0], view[1]) %}
    {% if key not in ours %}
      {% set body = (view[3] | lower).replace('"', '') %}
      {% for gone in dropped %}
        {% if gone not in ours and modules.re.search('\\b' ~ modules.re.escape(gone) ~ '\\b', body) %}
          {% do broken.append(view[0] ~ '.' ~ view[1] ~ ' (reads ' ~ gone ~ ', which the switch drops)') %}
        {% endif %}
      {% endfor %}
      {% if not broken %}
        {% do run_query("select * from " ~ dot_rel(view[0], view[1]) ~ " limit 0") %}
      {% endif %}
    {% endif %}
  {% endfor %}
  {{ return(broken) }}
{% endmacro %}

{% macro postgres__dot_broken_user_views(schemas, ours, dropped) %}
  {% call statement('dot_check_user_views') %}
do $dot$
declare
  v record;
  broken text := '';
begin
  for v in select n.nspname, c.relname from pg_class c join pg_namespace n on n.oid = c.relnamespace
           where c.relkind in ('v', 'm') and lower(n.nspname) in {{ dot_in_list(schemas) }}
             and lower(n.nspname) || '.' || c.relname not in {{ dot_in_exact(ours) }}
  loop
    begin
      execute format('select * from %I.%I limit 0', v.nspname, v.relname);
    exception when lock_not_available then
      null;  -- busy, not broken: another session holds what it reads
    when others then
      broken := broken || v.nspname || '.' || v.relname || ' (' || sqlerrm || ')' || chr(10);
    end;
  end loop;
  perform set_config('dot_tasks.broken', broken, true);
end
$dot$
  {% endcall %}
  {% set found = run_query("select current_setting('dot_tasks.broken')")[0][0] %}
  {{ return((found or '').strip().split('\n') if (found or '').strip() else []) }}
{% endmacro %}


{#- [[view schema, view name, what it reads]] for the views in `schemas`: on
    PostgreSQL the relations the view depends on ("schema.name"), elsewhere the
    view's SQL text. -#}
{% macro dot_view_sources(schemas) %}
  {{ return(adapter.dispatch('dot_view_sources', 'dot_tasks_ops')(schemas)) }}
{% endmacro %}

{% macro default__dot_view_sources(schemas) %}
  {% set rows = run_query(
      "select schema_name, view_name, sql from duckdb_views() where database_name = " ~ dot_lit(target.database)
      ~ " and lower(schema_name) in " ~ dot_in_list(schemas)) %}
  {% set found = [] %}
  {% for row in rows %}{% do found.append([row[0], row[1], 'sql', row[2]]) %}{% endfor %}
  {{ return(found) }}
{% endmacro %}

{% macro postgres__dot_view_sources(schemas) %}
  {% set rows = run_query(
      "select distinct dn.nspname, dc.relname, n.nspname || '.' || c.relname"
      ~ " from pg_depend d join pg_rewrite r on r.oid = d.objid"
      ~ " join pg_class dc on dc.oid = r.ev_class join pg_namespace dn on dn.oid = dc.relnamespace"
      ~ " join pg_class c on c.oid = d.refobjid join pg_namespace n on n.oid = c.relnamespace"
      ~ " where d.classid = 'pg_rewrite'::regclass and d.refclassid = 'pg_class'::regclass"
      ~ " and dc.oid <> c.oid and dc.relkind = 'v' and lower(dn.nspname) in " ~ dot_in_list(schemas)) %}
  {% set found = [] %}
  {% for row in rows %}{% do found.append([row[0], row[1], 'relation', row[2]]) %}{% endfor %}
  {{ return(found) }}
{% endmacro %}


{#- What `live` and `rollback` read: the history, and what the live schemas
    hold now, for the drift check. Reads only. -#}
{% macro dot_live_state(live_schema, limit) %}
  {% set existing = dot_existing_relations([live_schema]) %}
  {% if dot_key(live_schema, 'dot_promotions') not in existing %}
    {{ return({'history': [], 'commits': []}) }}
  {% endif %}
  {% set history = dot_rel(live_schema, 'dot_promotions') %}
  {% set rows = run_query(
      "select seq, cast(promoted_at as " ~ dbt.type_string() ~ "), action, context, commit_sha, short, refs,"
      ~ " promoted_by, previous_commit, node_count, gate_overridden, build_schema from " ~ history
      ~ " order by seq desc limit " ~ (limit | int)) %}
  {% set names = ['seq', 'promoted_at', 'action', 'context', 'commit', 'short', 'refs', 'promoted_by',
                  'previous_commit', 'node_count', 'gate_overridden', 'build_schema'] %}
  {% set out = [] %}
  {% for row in rows %}
    {% set item = {} %}
    {% for name in names %}{% do item.update({name: row[loop.index0]}) %}{% endfor %}
    {% do out.append(item) %}
  {% endfor %}
  {% set commits = [] %}
  {% for row in run_query("select distinct commit_sha from " ~ history) %}{% do commits.append(row[0]) %}{% endfor %}
  {% set latest = dot_latest_promotion(live_schema, existing) %}
  {% set relations = latest['relations'] if latest else [] %}
  {% set schemas = [] %}
  {% set build_schemas = [] %}
  {% for rel in relations %}
    {% if rel[1] not in schemas %}{% do schemas.append(rel[1]) %}{% endif %}
    {% if rel[0] not in build_schemas %}{% do build_schemas.append(rel[0]) %}{% endif %}
  {% endfor %}
  {% set now = dot_existing_relations(schemas + build_schemas + [live_schema]) if schemas else {} %}
  {{ return({
      'case_sensitive': dot_case_sensitive(),
      'history': out,
      'commits': commits,
      'relations': relations,
      'existing': now,
      'view_sources': dot_view_sources(schemas) if schemas else [],
  }) }}
{% endmacro %}
