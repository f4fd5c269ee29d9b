{#- The build registry and the clean that decides from the warehouse.

    Every build appends events to `<base>_dot.dot_builds` (a schema of
    dot-tasks' own beside the context's base schema): one when it starts
    (status 'running'), one when it ends ('success' / 'failed'). A build's
    state is its newest event, keyed by (project, commit, context). Events are
    only ever inserted, so the table works on warehouses without UPDATE; a
    clean deletes the build's events (or, where DELETE is missing, appends
    'cleaned').

    Every column is a string: timestamps are ISO-8601 UTC text, which sorts as
    time does on every engine and prints the same on all of them.

    `dot_clean_build(plan)` is the only way dot-tasks drops a build schema: in
    one transaction it reads what is live and what may be rolled back to (the
    context's `dot_promotions`), what other machines' builds defer to (every
    registry in the database) and what depends on the schema (pg_depend on
    PostgreSQL, view bodies elsewhere); then it drops the build's relations one
    by one and the schema with RESTRICT. Never CASCADE. -#}

{% macro dot_registry_columns() -%}
  {%- set names = ['project', 'commit_sha', 'short', 'context', 'build_schema', 'schemas', 'status',
                   'started_at', 'finished_at', 'recorded_at', 'dbt_version', 'dot_version', 'built_by',
                   'host', 'workdir', 'command', 'deferred_commit', 'deferred_context', 'deferred_schema'] -%}
  {{- return(names) -}}
{%- endmacro %}

{% macro dot_reg_lit(value) -%}
  {%- if value is none -%}null{%- else -%}'{{ (value | string).replace("'", "''") }}'{%- endif -%}
{%- endmacro %}

{% macro dot_reg_ident(name) -%}
  {#- adapter.quote does not double a quote inside the name: do it here. -#}
  {{- adapter.quote((name | string).replace('"', '""').replace('`', '``')) -}}
{%- endmacro %}

{% macro dot_reg_table(schema) -%}
  {{ dot_reg_ident(schema) }}.{{ adapter.quote('dot_builds') }}
{%- endmacro %}

{% macro dot_reg_in(values) -%}
  ({%- for v in values -%}{{ dot_reg_lit(v | lower) }}{{ ", " if not loop.last }}{%- endfor -%})
{%- endmacro %}

{% macro dot_reg_database() -%}
  {{- return(target.database if target.database is defined else none) -}}
{%- endmacro %}


{#- Start the one transaction of a registry operation (auto_begin). -#}
{% macro dot_reg_begin() %}
  {{ return(adapter.dispatch('dot_reg_begin', 'dot_tasks_ops')()) }}
{% endmacro %}

{% macro default__dot_reg_begin() %}
  {% call statement('dot_registry_begin', auto_begin=True) %}select 1{% endcall %}
{% endmacro %}


{% macro dot_registry_ensure(registry_schema) %}
  {% set relation = api.Relation.create(database=dot_reg_database(), schema=registry_schema) %}
  {% do adapter.create_schema(relation) %}
  {% set columns = [] %}
  {% for name in dot_registry_columns() %}{% do columns.append(name ~ ' ' ~ dbt.type_string()) %}{% endfor %}
  {% do run_query("create table if not exists " ~ dot_reg_table(registry_schema) ~ " (" ~ columns | join(', ') ~ ")") %}
{% endmacro %}


{#- The newest event of every build in one registry, as dicts. -#}
{% macro dot_registry_latest(registry_schema, where='1 = 1') %}
  {% set names = dot_registry_columns() %}
  {% set rows = run_query(
      "select " ~ names | join(', ') ~ " from (select " ~ names | join(', ')
      ~ ", row_number() over (partition by project, commit_sha, context order by recorded_at desc) as dot_rn"
      ~ " from " ~ dot_reg_table(registry_schema) ~ ") dot_latest where dot_rn = 1 and status <> 'cleaned' and ("
      ~ where ~ ")") %}
  {% set found = [] %}
  {% for row in rows %}
    {% set item = {'registry': registry_schema} %}
    {% for name in names %}{% do item.update({name: row[loop.index0]}) %}{% endfor %}
    {% do found.append(item) %}
  {% endfor %}
  {{ return(found) }}
{% endmacro %}


{#- Record one event of a build (called from the build's own dbt child).
    A 'running' event first checks that no other commit holds the same
    suffix in this registry: two machines must never give two commits one
    schema. Returns {'collision': {...}} instead of writing when one does.
    `ensure=false` skips creating the schema and table, for the end of a build
    whose start was written (on Spark each is a metastore round trip). -#}
{% macro dot_registry_record(registry_schema, row, ensure=true) %}
  {% do dot_reg_begin() %}
  {% if ensure %}{% do dot_registry_ensure(registry_schema) %}{% endif %}
  {% if row['status'] == 'running' %}
    {% set other = "lower(short) = " ~ dot_reg_lit(row['short'] | lower) ~ " and commit_sha <> " ~ dot_reg_lit(row['commit_sha']) %}
    {#- A clash needs some event of another commit under this suffix. That plain
        filter (one scan; on Spark one stage, where the newest-event window is a
        shuffle) rules out the usual case before each build's newest event is read. -#}
    {% set under_suffix = run_query("select commit_sha from " ~ dot_reg_table(registry_schema) ~ " where " ~ other ~ " limit 1") %}
    {% set clash = dot_registry_latest(registry_schema, other) if under_suffix.rows | length > 0 else [] %}
    {% if clash %}
      {{ return({'collision': {'commit': clash[0]['commit_sha'], 'host': clash[0]['host'],
                               'built_by': clash[0]['built_by'], 'context': clash[0]['context']}}) }}
    {% endif %}
  {% endif %}
  {% set values = [] %}
  {% for name in dot_registry_columns() %}{% do values.append(dot_reg_lit(row.get(name))) %}{% endfor %}
  {#- Again: on dbt's own connection (the build's guard) creating the schema
      commits on dbt-postgres, and the commit below would find no transaction. -#}
  {% do dot_reg_begin() %}
  {% do run_query("insert into " ~ dot_reg_table(registry_schema) ~ " select " ~ values | join(', ')) %}
  {% do adapter.commit() %}
  {{ return({'recorded': row['status']}) }}
{% endmacro %}


{#- The schemas of this database that hold a registry. -#}
{% macro dot_registry_schemas() %}
  {{ return(adapter.dispatch('dot_registry_schemas', 'dot_tasks_ops')()) }}
{% endmacro %}

{% macro default__dot_registry_schemas() %}
  {% set database = dot_reg_database() %}
  {% set rows = run_query(
      "select distinct table_schema from information_schema.tables where lower(table_name) = 'dot_builds'"
      ~ (" and table_catalog = " ~ dot_reg_lit(database) if database else "")
      ~ " order by 1") %}
  {% set found = [] %}
  {% for row in rows %}{% do found.append(row[0]) %}{% endfor %}
  {{ return(found) }}
{% endmacro %}

{% macro spark__dot_registry_schemas() %}
  {% set found = [] %}
  {% for row in run_query("show schemas like '*_dot'") %}
    {% if run_query("show tables in " ~ dot_reg_ident(row[0]) ~ " like 'dot_builds'") | length > 0 %}
      {% do found.append(row[0]) %}
    {% endif %}
  {% endfor %}
  {{ return(found) }}
{% endmacro %}


{#- The newest promotion of a live schema: {'commit', 'previous', 'action', 'relations'} or none.
    dot_promotions belongs to promote; only its commit_sha, previous_commit,
    action, seq and relations columns are read here. -#}
{% macro dot_reg_promotion(live_schema) %}
  {% set history = adapter.get_relation(database=dot_reg_database(), schema=live_schema, identifier='dot_promotions') %}
  {% if history is none %}{{ return(none) }}{% endif %}
  {% set rows = run_query("select commit_sha, previous_commit, action, relations from "
      ~ dot_reg_ident(live_schema) ~ "." ~ adapter.quote('dot_promotions') ~ " order by seq desc limit 1") %}
  {% if rows | length == 0 %}{{ return(none) }}{% endif %}
  {% set action = rows[0][2] %}
  {{ return({'commit': none if action == 'retire' else rows[0][0], 'previous': rows[0][1], 'action': action,
             'relations': fromjson(rows[0][3] or '[]')}) }}
{% endmacro %}


{#- What `list --warehouse` shows: every registered build of the database, and each live schema's state. -#}
{% macro dot_registry_read() %}
  {% set builds = [] %}
  {% set registries = dot_registry_schemas() %}
  {% for schema in registries %}
    {% do builds.extend(dot_registry_latest(schema)) %}
  {% endfor %}
  {% set live = {} %}
  {% for row in builds %}
    {% set suffix = '_' ~ row['short'] %}
    {% set schema = row['build_schema'] or '' %}
    {% if schema | lower != suffix | lower and (schema | lower).endswith(suffix | lower) %}
      {% set base = schema[:(schema | length) - (suffix | length)] %}
      {% if base not in live %}{% do live.update({base: dot_reg_promotion(base)}) %}{% endif %}
    {% endif %}
  {% endfor %}
  {{ return({'builds': builds, 'live': live, 'registries': registries}) }}
{% endmacro %}


{#- [[dependant schema, dependant name, schema, name]]: relations outside `schemas`
    and `keys` ("schema.name") that read a relation inside them. -#}
{% macro dot_reg_dependants(schemas, keys) %}
  {{ return(adapter.dispatch('dot_reg_dependants', 'dot_tasks_ops')(schemas, keys)) }}
{% endmacro %}

{% macro postgres__dot_reg_dependants(schemas, keys) %}
  {% set inside = "(lower(n.nspname) in " ~ dot_reg_in(schemas + ['']) ~ " or lower(n.nspname || '.' || c.relname) in "
      ~ dot_reg_in(keys + ['']) ~ ")" %}
  {% set outside = "not (lower(dn.nspname) in " ~ dot_reg_in(schemas + ['']) ~ " or lower(dn.nspname || '.' || dc.relname) in "
      ~ dot_reg_in(keys + ['']) ~ ")" %}
  {% set rows = run_query(
      "select distinct dn.nspname, dc.relname, n.nspname, c.relname"
      ~ " from pg_depend d join pg_rewrite r on r.oid = d.objid"
      ~ " join pg_class dc on dc.oid = r.ev_class join pg_namespace dn on dn.oid = dc.relnamespace"
      ~ " join pg_class c on c.oid = d.refobjid join pg_namespace n on n.oid = c.relnamespace"
      ~ " where d.classid = 'pg_rewrite'::regclass and d.refclassid = 'pg_class'::regclass"
      ~ " and dc.oid <> c.oid and " ~ inside ~ " and " ~ outside ~ " order by 1, 2, 3, 4") %}
  {% set found = [] %}
  {% for row in rows %}{% do found.append([row[0], row[1], row[2], row[3]]) %}{% endfor %}
  {{ return(found) }}
{% endmacro %}

{#- DuckDB records no dependencies between views: read every other view's body
    and look for the schema (or the relation) it would lose. -#}
{% macro duckdb__dot_reg_dependants(schemas, keys) %}
  {% set rows = run_query("select schema_name, view_name, sql from duckdb_views() where not internal and database_name = "
      ~ dot_reg_lit(target.database)) %}
  {{ return(dot_reg_scan_bodies(rows, schemas, keys)) }}
{% endmacro %}

{% macro default__dot_reg_dependants(schemas, keys) %}
  {% set rows = run_query("select table_schema, table_name, view_definition from information_schema.views") %}
  {{ return(dot_reg_scan_bodies(rows, schemas, keys)) }}
{% endmacro %}

{#- Spark's: in dot_spark.sql. -#}

{% macro dot_reg_scan_bodies(rows, schemas, keys) %}
  {% set found = [] %}
  {% set re = modules.re %}
  {% for row in rows %}
    {% set key = (row[0] ~ '.' ~ row[1]) | lower %}
    {% if (row[0] | lower) not in schemas and key not in keys %}
      {% set body = (row[2] or '') | lower | replace('"', '') | replace('`', '') %}
      {% for schema in schemas %}
        {% if re.search('(^|[^a-z0-9_$])' ~ re.escape(schema) ~ '\\s*\\.', body) %}
          {% do found.append([row[0], row[1], schema, '*']) %}
        {% endif %}
      {% endfor %}
      {% for other in keys %}
        {% if re.search('(^|[^a-z0-9_$.])' ~ re.escape(other) ~ '($|[^a-z0-9_$])', body) %}
          {% do found.append([row[0], row[1], other.split('.')[0], other.split('.')[1]]) %}
        {% endif %}
      {% endfor %}
    {% endif %}
  {% endfor %}
  {{ return(found) }}
{% endmacro %}


{#- [[name, kind]] of the relations in `schema`, views first: the order they can be dropped in. -#}
{% macro dot_reg_relations(schema) %}
  {{ return(adapter.dispatch('dot_reg_relations', 'dot_tasks_ops')(schema)) }}
{% endmacro %}

{% macro default__dot_reg_relations(schema) %}
  {% set relation = api.Relation.create(database=dot_reg_database(), schema=schema) %}
  {% set views, others = [], [] %}
  {% for row in list_relations_without_caching(relation) %}
    {% if row['type'] == 'view' %}
      {% do views.append([row['name'], 'view']) %}
    {% elif row['type'] == 'materialized_view' %}
      {% do others.insert(0, [row['name'], 'materialized view']) %}
    {% else %}
      {% do others.append([row['name'], 'table']) %}
    {% endif %}
  {% endfor %}
  {{ return(views + others) }}
{% endmacro %}

{% macro spark__dot_reg_relations(schema) %}
  {% set views, others = [], [] %}
  {% for row in run_query("show views in " ~ dot_reg_ident(schema)) %}{% do views.append(row[1]) %}{% endfor %}
  {% set found = [] %}
  {% for name in views %}{% do found.append([name, 'view']) %}{% endfor %}
  {% for row in run_query("show tables in " ~ dot_reg_ident(schema)) %}
    {% if row[1] not in views %}{% do others.append([row[1], 'table']) %}{% endif %}
  {% endfor %}
  {{ return(found + others) }}
{% endmacro %}

{% macro dot_reg_drop_schema(schema) %}
  {{ return(adapter.dispatch('dot_reg_drop_schema', 'dot_tasks_ops')(schema)) }}
{% endmacro %}

{% macro default__dot_reg_drop_schema(schema) %}
  {% do run_query("drop schema if exists " ~ dot_reg_ident(schema) ~ " restrict") %}
{% endmacro %}

{% macro spark__dot_reg_drop_schema(schema) %}
  {#- Spark's DROP DATABASE is RESTRICT unless told CASCADE. -#}
  {% do run_query("drop database if exists " ~ dot_reg_ident(schema)) %}
{% endmacro %}

{% macro dot_reg_forget(registries, row) %}
  {{ return(adapter.dispatch('dot_reg_forget', 'dot_tasks_ops')(registries, row)) }}
{% endmacro %}

{% macro default__dot_reg_forget(registries, row) %}
  {% for schema in registries %}
    {% do run_query("delete from " ~ dot_reg_table(schema) ~ " where project = " ~ dot_reg_lit(row['project'])
        ~ " and commit_sha = " ~ dot_reg_lit(row['commit_sha']) ~ " and context = " ~ dot_reg_lit(row['context'])) %}
  {% endfor %}
{% endmacro %}

{% macro spark__dot_reg_forget(registries, row) %}
  {#- No DELETE on Spark's default tables: the build's newest event says it is gone. -#}
  {% set values = [] %}
  {% for name in dot_registry_columns() %}
    {% do values.append(dot_reg_lit('cleaned' if name == 'status' else row.get(name))) %}
  {% endfor %}
  {% for schema in registries %}
    {% do run_query("insert into " ~ dot_reg_table(schema) ~ " select " ~ values | join(', ')) %}
  {% endfor %}
{% endmacro %}


{#- Drop one build's schemas, deciding from the warehouse first.

    plan:
      schemas      the build's own schemas (each carries its suffix: checked in Python)
      live_schema  the context's live schema, whose dot_promotions says what is live
      row          {project, commit_sha, context, recorded_at}: the registry key; its events go too
      leaving      [[commit, context], ...] builds that this same clean removes
      force        drop a live build, a rollback target or a base anyway; live views that
                   promotions made go with it (named). Never anything else.
      dry_run      decide and report, change nothing

    Returns {'refusal': kind, 'reasons': [...], 'dependants': [...]} when it
    keeps the build, else {'dropped': [...], 'broken': [...], 'relations': n}. -#}
{% macro dot_clean_build(plan) %}
  {% do dot_reg_begin() %}
  {% set schemas = [] %}
  {% for s in plan['schemas'] %}{% do schemas.append(s | lower) %}{% endfor %}
  {% set commit = plan['row']['commit_sha'] %}
  {% set reasons = [] %}

  {#- 1. Live, and rollback targets, from the warehouse's own history. -#}
  {% set promotion = dot_reg_promotion(plan['live_schema']) if plan.get('live_schema') else none %}
  {% if promotion and promotion['commit'] == commit %}
    {% do reasons.append('live for ' ~ plan['row']['context'] ~ ' in ' ~ plan['live_schema']) %}
  {% endif %}
  {% if promotion and promotion['previous'] == commit %}
    {% do reasons.append('rollback target for ' ~ plan['row']['context'] ~ ' in ' ~ plan['live_schema']) %}
  {% endif %}

  {#- 2. Builds on any machine that defer to (or cloned from) one of these schemas. -#}
  {% set registries = dot_registry_schemas() %}
  {% set leaving = [] %}
  {% for key in plan.get('leaving', []) %}{% do leaving.append(key[0] ~ '@' ~ key[1]) %}{% endfor %}
  {#- The schemas of those builds: views there that read this one (a clone's) were made by dot-tasks. -#}
  {% set user_schemas = [] %}
  {% for registry in registries %}
    {% for user in dot_registry_latest(registry, "lower(deferred_schema) in " ~ dot_reg_in(schemas)) %}
      {% if (user['commit_sha'] ~ '@' ~ user['context']) not in leaving %}
        {% do reasons.append(user['context'] ~ '@' ~ user['short'] ~ ' (' ~ (user['built_by'] or '?') ~ ' on '
            ~ (user['host'] or '?') ~ ') defers to it') %}
      {% endif %}
      {% for schema in fromjson(user['schemas'] or '[]') + [user['build_schema']] %}
        {% if schema and (schema | lower) not in schemas %}{% do user_schemas.append(schema | lower) %}{% endif %}
      {% endfor %}
    {% endfor %}
  {% endfor %}

  {#- 3. Whatever reads the schemas from outside: only live views that promotions made may go with them. -#}
  {% set made = [] %}
  {% for rel in (promotion['relations'] if promotion else []) %}
    {% if (rel[0] | lower) in schemas %}{% do made.append((rel[1] ~ '.' ~ rel[2]) | lower) %}{% endif %}
  {% endfor %}
  {% set breaking = [] %}
  {% set breaking_builds = [] %}
  {% set foreign = [] %}
  {#- A view promotions made that reads the build goes with it under --force; then what reads that view. -#}
  {% set pending = dot_reg_dependants(schemas, []) %}
  {% for level in range(8) %}
    {% set grew = [] %}
    {% for dep in pending %}
      {% set key = (dep[0] ~ '.' ~ dep[1]) | lower %}
      {% set shown = dep[0] ~ '.' ~ dep[1] ~ ' (reads ' ~ dep[2] ~ ('.' ~ dep[3] if dep[3] != '*' else '') ~ ')' %}
      {% if key in made and key not in breaking %}
        {% do breaking.append(key) %}
        {% do grew.append(key) %}
      {% elif (dep[0] | lower) in user_schemas and key not in breaking_builds %}
        {% do breaking_builds.append(key) %}
        {% do grew.append(key) %}
      {% elif key not in made and (dep[0] | lower) not in user_schemas and shown not in foreign %}
        {% do foreign.append(shown) %}
      {% endif %}
    {% endfor %}
    {% set deeper = dot_reg_dependants(schemas, breaking + breaking_builds) if grew else [] %}
    {% do pending.clear() %}
    {% do pending.extend(deeper) %}
  {% endfor %}

  {% if foreign %}
    {{ return({'refusal': 'dependants', 'dependants': foreign, 'reasons': reasons, 'breaking': breaking}) }}
  {% endif %}
  {% if reasons and not plan.get('force') %}
    {{ return({'refusal': 'protected', 'reasons': reasons, 'breaking': breaking, 'dependants': []}) }}
  {% endif %}
  {% set present = [] %}
  {% for schema in plan['schemas'] %}
    {% if adapter.check_schema_exists(dot_reg_database(), schema) %}{% do present.append(schema) %}{% endif %}
  {% endfor %}
  {% if plan.get('dry_run') %}
    {{ return({'dropped': present, 'broken': breaking, 'broken_builds': breaking_builds, 'reasons': reasons,
               'dry_run': true}) }}
  {% endif %}

  {#- 4. The drop: live views that must go (with --force), the build's relations one by one, each schema RESTRICT. -#}
  {% for key in breaking + breaking_builds %}
    {% set parts = key.split('.') %}
    {% do run_query("drop view " ~ dot_reg_ident(parts[0]) ~ "." ~ dot_reg_ident(parts[1])) %}
    {{ log("dot-tasks: dropped the view " ~ key ~ " (--force)", info=True) }}
  {% endfor %}
  {% set count = [] %}
  {% for schema in present %}
    {% for rel in dot_reg_relations(schema) %}
      {% do run_query("drop " ~ rel[1] ~ " if exists " ~ dot_reg_ident(schema) ~ "." ~ dot_reg_ident(rel[0])) %}
      {% do count.append(1) %}
    {% endfor %}
    {% do dot_reg_drop_schema(schema) %}
    {{ log("dot-tasks: dropped schema " ~ schema, info=True) }}
  {% endfor %}
  {% do dot_reg_forget(registries, plan['row']) %}
  {% if breaking and promotion %}
    {% do dot_reg_record_broken(plan, promotion, breaking) %}
  {% endif %}
  {% do adapter.commit() %}
  {{ return({'dropped': present, 'broken': breaking, 'broken_builds': breaking_builds, 'reasons': reasons,
             'relations': count | length}) }}
{% endmacro %}


{#- --force broke the live views: the live schema's history says so, as a
    'retire' row (nothing is live any more; the previous commit stays the
    rollback target). -#}
{% macro dot_reg_record_broken(plan, promotion, breaking) %}
  {% set history = dot_reg_ident(plan['live_schema']) ~ "." ~ adapter.quote('dot_promotions') %}
  {% set row = plan['row'] %}
  {% do run_query(
      "insert into " ~ history ~ " (seq, promoted_at, action, context, commit_sha, short, refs, promoted_by,"
      ~ " previous_commit, node_count, gate_overridden, build_schema, relations)"
      ~ " select coalesce(max(seq), 0) + 1, cast(" ~ dot_reg_lit(row['recorded_at'][:26] | replace('T', ' ')) ~ " as "
      ~ dbt.type_timestamp() ~ "), 'retire', " ~ dot_reg_lit(row['context']) ~ ", " ~ dot_reg_lit(row['commit_sha'])
      ~ ", " ~ dot_reg_lit(plan.get('short')) ~ ", " ~ dot_reg_lit('broken by clean --force: ' ~ breaking | join(', '))
      ~ ", " ~ dot_reg_lit(plan.get('cleaned_by')) ~ ", " ~ dot_reg_lit(promotion['previous']) ~ ", 0, false, "
      ~ dot_reg_lit(plan['schemas'][0]) ~ ", '[]' from " ~ history) %}
{% endmacro %}
