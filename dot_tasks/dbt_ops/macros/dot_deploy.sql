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

{% macro dot_key(schema, name) -%}
  {{ (schema ~ '.' ~ name) | lower }}
{%- endmacro %}

{% macro dot_in_list(values) -%}
  ({%- for v in values -%}{{ dot_lit(v | lower) }}{{ ", " if not loop.last }}{%- endfor -%})
{%- endmacro %}


{#- The promotion lock inside the warehouse: one promotion per live schema, also
    between machines. Transaction-scoped, so a killed promotion frees it. -#}
{% macro dot_take_promotion_lock(live_schema) %}
  {{ return(adapter.dispatch('dot_take_promotion_lock', 'dot_tasks_ops')(live_schema)) }}
{% endmacro %}

{#- Both open the promotion's one transaction (auto_begin): every query after
    this, reads included, runs inside it until dot_promote commits. -#}
{% macro default__dot_take_promotion_lock(live_schema) %}
  {#- DuckDB admits one writer per file; dot-tasks holds a file lock as well. -#}
  {% call statement('dot_begin', auto_begin=True) %}select 1{% endcall %}
{% endmacro %}

{% macro postgres__dot_take_promotion_lock(live_schema) %}
  {% call statement('dot_promotion_lock', auto_begin=True) %}
    select pg_advisory_xact_lock(hashtext({{ dot_lit('dot-tasks promote ' ~ (live_schema | lower)) }}))
  {% endcall %}
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
      ~ " and dc.oid <> c.oid and lower(n.nspname || '.' || c.relname) in " ~ dot_in_list(keys)
      ~ " order by 1, 2") %}
  {% set found = [] %}
  {% for row in rows %}{% do found.append([row[0], row[1], row[2], row[3]]) %}{% endfor %}
  {{ return(found) }}
{% endmacro %}


{#- Take the locks of every live relation the switch will replace or drop, all
    at once, before changing any. A reader holding one of them (a transaction
    that has read the old `orders`) is waited out rather than deadlocked: the
    attempt is NOWAIT and all-or-nothing, and is retried until `wait` seconds.
    So a reader that started on the old views finishes on the old views. -#}
{% macro dot_lock_relations(keys_and_rels, wait) %}
  {{ return(adapter.dispatch('dot_lock_relations', 'dot_tasks_ops')(keys_and_rels, wait)) }}
{% endmacro %}

{% macro default__dot_lock_relations(keys_and_rels, wait) %}
  {{ return(none) }}
{% endmacro %}

{% macro postgres__dot_lock_relations(keys_and_rels, wait) %}
  {% if not keys_and_rels %}{{ return(none) }}{% endif %}
  {% set names = [] %}
  {% for rel in keys_and_rels %}{% do names.append(rel) %}{% endfor %}
  {% call statement('dot_lock_live_relations') %}
do $dot$
declare
  deadline timestamptz := clock_timestamp() + interval '{{ wait | int }} seconds';
begin
  loop
    begin
      lock table {{ names | join(', ') }} in access exclusive mode nowait;
      exit;
    exception when lock_not_available then
      if clock_timestamp() > deadline then
        raise exception 'readers held the live relations for {{ wait | int }}s: the promotion gave up and changed nothing';
      end if;
      perform pg_sleep(0.005);
    end;
  end loop;
end
$dot$
  {% endcall %}
{% endmacro %}


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


{#- The newest row of dot_promotions, or none. -#}
{% macro dot_latest_promotion(live_schema, existing) %}
  {% if dot_key(live_schema, 'dot_promotions') not in existing %}{{ return(none) }}{% endif %}
  {% set rows = run_query(
      "select commit_sha, relations, context, seq, previous_commit from " ~ dot_rel(live_schema, 'dot_promotions')
      ~ " order by seq desc limit 1") %}
  {% if rows | length == 0 %}{{ return(none) }}{% endif %}
  {{ return({'commit': rows[0][0], 'relations': fromjson(rows[0][1] or '[]'), 'context': rows[0][2],
             'seq': rows[0][3], 'previous': rows[0][4]}) }}
{% endmacro %}


{% macro dot_promote(plan) %}
  {% set live = plan['live_schema'] %}
  {% do dot_take_promotion_lock(live) %}
  {{ log("dot-tasks: promotion lock taken for " ~ live, info=True) }}
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
  {% if plan.get('rollback') and previous == wanted %}
    {{ return({'refusal': 'already live', 'live': previous}) }}
  {% endif %}

  {#- What the previous promotion made: the only relations dot-tasks may drop. -#}
  {% set owned = [] %}
  {% for rel in (latest['relations'] if latest else []) %}
    {% do owned.append(dot_key(rel[1], rel[2])) %}
  {% endfor %}

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

  {% set dropped_keys = [] %}
  {% for rel in drops + recreate + replace_user %}{% do dropped_keys.append(dot_key(rel[1], rel[2])) %}{% endfor %}
  {% set dependants = dot_dependants(dropped_keys) %}
  {% if dependants %}
    {{ return({'refusal': 'dependants', 'relations': dependants}) }}
  {% endif %}

  {% set to_lock = [] %}
  {% for rel in replace_in_place + drops + replace_user %}{% do to_lock.append(dot_rel(rel[1], rel[2])) %}{% endfor %}
  {% do dot_lock_relations(to_lock, plan.get('lock_wait_seconds', 60)) %}
  {{ log("dot-tasks: switching " ~ plan['relations'] | length ~ " relation(s) of " ~ live ~ " to " ~ plan['row']['short'], info=True) }}

  {% set statements = [] %}
  {% set present = [] %}
  {% for key in existing %}{% do present.append(key.split('.')[0]) %}{% endfor %}
  {% for schema in plan['live_schemas'] %}
    {#- Only where nothing exists yet: CREATE SCHEMA needs a privilege even when it would do nothing. -#}
    {% if schema | lower not in present %}
      {% do statements.append("create schema if not exists " ~ adapter.quote(schema)) %}
    {% endif %}
  {% endfor %}
  {% for rel in drops + recreate %}
    {% do statements.append("drop view " ~ dot_rel(rel[1], rel[2])) %}
  {% endfor %}
  {% for rel in replace_user %}
    {% do statements.append("drop " ~ rel[3] ~ " " ~ dot_rel(rel[1], rel[2])) %}
  {% endfor %}
  {% for rel in plan['relations'] %}
    {% do statements.append("create or replace view " ~ dot_rel(rel[1], rel[2]) ~ " as select * from " ~ dot_rel(rel[0], rel[2])) %}
  {% endfor %}
  {% set history = dot_rel(live, 'dot_promotions') %}
  {% do statements.append("create table if not exists " ~ history ~ " (" ~ dot_history_columns() ~ ")") %}
  {% set row = plan['row'] %}
  {% do statements.append(
      "insert into " ~ history ~ " (seq, promoted_at, action, context, commit_sha, short, refs, promoted_by,"
      ~ " previous_commit, node_count, gate_overridden, build_schema, relations)"
      ~ " select coalesce(max(seq), 0) + 1, cast(" ~ dot_lit(row['promoted_at']) ~ " as " ~ dbt.type_timestamp() ~ "), "
      ~ dot_lit(row['action']) ~ ", " ~ dot_lit(row['context']) ~ ", " ~ dot_lit(row['commit']) ~ ", "
      ~ dot_lit(row['short']) ~ ", " ~ dot_lit(row['refs']) ~ ", " ~ dot_lit(row['promoted_by']) ~ ", "
      ~ dot_lit(previous) ~ ", " ~ (plan['relations'] | length) ~ ", "
      ~ ('true' if row['gate_overridden'] else 'false') ~ ", " ~ dot_lit(row['build_schema']) ~ ", "
      ~ dot_lit(tojson(plan['relations'])) ~ " from " ~ history) %}
  {% do dot_run_switch(statements) %}
  {{ log("dot-tasks: committing the switch of " ~ live, info=True) }}
  {% do adapter.commit() %}
  {% set replaced_names = [] %}
  {% for c in conflicts %}{% do replaced_names.append(c[0]) %}{% endfor %}
  {% set dropped_names = [] %}
  {% for rel in drops %}{% do dropped_names.append(rel[1] ~ '.' ~ rel[2]) %}{% endfor %}
  {% set recreated_names = [] %}
  {% for rel in recreate %}{% do recreated_names.append(rel[1] ~ '.' ~ rel[2]) %}{% endfor %}
  {{ return({
      'previous': previous,
      'created': create_new | length,
      'replaced': replace_in_place | length,
      'recreated': recreated_names,
      'dropped': dropped_names,
      'replaced_existing': replaced_names,
  }) }}
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
  {% for rel in relations %}{% if rel[1] not in schemas %}{% do schemas.append(rel[1]) %}{% endif %}{% endfor %}
  {% set now = dot_existing_relations(schemas + [live_schema]) if schemas else {} %}
  {{ return({
      'history': out,
      'commits': commits,
      'relations': relations,
      'existing': now,
      'view_sources': dot_view_sources(schemas) if schemas else [],
  }) }}
{% endmacro %}
