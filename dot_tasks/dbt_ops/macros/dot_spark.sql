{#- Apache Spark (dbt-spark, any method: thrift, http, odbc, session): what the ops macros need there.

    Spark has no transactions and records no dependencies between views. So a
    promotion on Spark is a sequence of statements, each visible when it ends:
    a reader between two of them sees some views of the new build and some of
    the old one. Each macro below that cannot keep a promise says so in one line
    of the command's output, rather than pretending. -#}


{#- No transactions to begin: dbt-spark's BEGIN is a no-op, and the `select 1` that
    opens one elsewhere would be one more round trip to the Thrift server. -#}
{% macro spark__dot_reg_begin() %}
{% endmacro %}


{#- The statements of one switch. Elsewhere they go as one batch inside the
    transaction dot_promote opened; Spark's Thrift server takes one statement a call. -#}
{% macro dot_run_switch(statements) %}
  {{ return(adapter.dispatch('dot_run_switch', 'dot_tasks_ops')(statements)) }}
{% endmacro %}

{% macro default__dot_run_switch(statements) %}
  {% call statement('dot_switch') %}{{ statements | join(";\n") }}{% endcall %}
{% endmacro %}

{% macro spark__dot_run_switch(statements) %}
  {#- The window a reader can see a mix in runs from the first drop or view statement
      to the last one; the history rows come after it. -#}
  {% set views, drops = [], [] %}
  {% for sql in statements %}
    {% if sql.startswith('alter view ') or sql.startswith('create view ') %}{% do views.append(sql) %}{% endif %}
    {% if sql.startswith('drop ') %}{% do drops.append(sql) %}{% endif %}
  {% endfor %}
  {% set clock = modules.datetime.datetime %}
  {% set window = {} %}
  {% for sql in statements %}
    {% set counted = sql in views or sql in drops %}
    {% if counted and 'first' not in window %}{% do window.update({'first': clock.now()}) %}{% endif %}
    {% call statement('dot_switch_' ~ loop.index) %}{{ sql }}{% endcall %}
    {% if counted %}{% do window.update({'last': clock.now()}) %}{% endif %}
  {% endfor %}
  {% if window %}
    {% set seconds = '%.2f' | format((window['last'] - window['first']).total_seconds()) %}
    {% if views %}
      {{ print("dot-tasks: Spark has no transactions: " ~ views | length ~ " view(s) were switched one at a time in "
             ~ seconds ~ "s, and a reader in that window could see some views of each build"
             ~ (", and none at all for the " ~ drops | length ~ " relation(s) dropped first" if drops else "")) }}
    {% else %}
      {{ print("dot-tasks: Spark has no transactions: " ~ drops | length ~ " view(s) were dropped one at a time in "
             ~ seconds ~ "s, and a reader in that window could find some still there") }}
    {% endif %}
  {% endif %}
{% endmacro %}


{#- Spark's CREATE OR REPLACE VIEW drops the view and creates it again, so a
    reader between the two finds no view at all. ALTER VIEW ... AS changes the
    one metastore entry in place: a reader sees the old view or the new one. -#}
{% macro spark__dot_point_view(schema, name, build_schema, exists) %}
  {{ return(("alter view " if exists else "create view ") ~ dot_rel(schema, name)
            ~ " as select * from " ~ dot_rel(build_schema, name)) }}
{% endmacro %}


{#- The check runs after the switch, and on Spark the switch is not atomic:
    a refusal there would say "nothing changed" when the views have. What the
    switch may break was said before it began (spark__dot_dependants). -#}
{% macro spark__dot_broken_user_views(schemas, ours, dropped) %}
  {{ return([]) }}
{% endmacro %}


{#- A view of the live schema that is not recorded as ours, and that is
    exactly what a switch makes (`select * from <live>_<suffix>.<its own
    name>`), was made by a promotion killed before its history row: it is
    taken as ours, so that `promote` again finishes the switch. A view of
    the user's would name anything else. -#}
{% macro spark__dot_left_by_an_interrupted_switch(relations, existing, owned) %}
  {% set candidates = {} %}
  {% for rel in relations %}
    {% set key = dot_key(rel[1], rel[2]) %}
    {% if existing.get(key) == 'view' and key not in owned %}{% do candidates.update({key: rel}) %}{% endif %}
  {% endfor %}
  {% set found = [] %}
  {% if candidates %}
    {% set schemas = [] %}
    {% for rel in candidates.values() %}{% if rel[1] not in schemas %}{% do schemas.append(rel[1]) %}{% endif %}{% endfor %}
    {% for view in spark__dot_view_sources(schemas) %}
      {% set key = dot_key(view[0], view[1]) %}
      {% if key in candidates %}
        {% set rel = candidates[key] %}
        {% set pattern = '(?is)^\s*select\s+\*\s+from\s+(?:spark_catalog\.)?' ~ modules.re.escape(rel[1] | lower)
                         ~ '_[0-9a-f]{4,40}\.' ~ modules.re.escape(rel[2] | lower) ~ '\s*$' %}
        {% if modules.re.match(pattern, view[3] | lower) %}{% do found.append(key) %}{% endif %}
      {% endif %}
    {% endfor %}
  {% endif %}
  {{ return(found) }}
{% endmacro %}


{#- Spark has nothing to commit: each statement of the switch took effect as it ran. -#}
{% macro spark__dot_commit_switch(live_schema) %}
{% endmacro %}


{% macro spark__dot_take_promotion_lock(live_schema, wait) %}
  {#- No lock in the warehouse: only this machine's lock file keeps two promotions of one live schema apart. -#}
  {{ print("dot-tasks: Spark has no locks or transactions: the switch is not atomic, and a promotion from another"
         " machine at the same moment is not kept out") }}
{% endmacro %}


{#- [{schema, name, is_view, information}] from SHOW TABLE EXTENDED, which also tells a view
    from a table; a schema that does not exist (which that statement would fail on) lists nothing. -#}
{% macro dot_spark_relations(schemas) %}
  {% set wanted = [] %}
  {% for schema in schemas %}{% if schema | lower not in wanted %}{% do wanted.append(schema | lower) %}{% endif %}{% endfor %}
  {% set present = [] %}
  {% for row in run_query("show schemas") %}{% if row[0] | lower in wanted %}{% do present.append(row[0]) %}{% endif %}{% endfor %}
  {% set found = [] %}
  {% for schema in present %}
    {% for row in run_query("show table extended in " ~ adapter.quote(schema) ~ " like '*'") %}
      {% if not row[2] %}  {#- isTemporary: a session's temporary views belong to nobody's build -#}
        {% do found.append({'schema': row[0], 'name': row[1], 'is_view': 'Type: VIEW' in row[3], 'information': row[3]}) %}
      {% endif %}
    {% endfor %}
  {% endfor %}
  {{ return(found) }}
{% endmacro %}

{% macro spark__dot_existing_relations(schemas) %}
  {% set found = {} %}
  {% for rel in dot_spark_relations(schemas) %}
    {% do found.update({dot_key(rel['schema'], rel['name']): ('view' if rel['is_view'] else 'table')}) %}
  {% endfor %}
  {{ return(found) }}
{% endmacro %}


{#- Spark replaces a view of any shape by any other: no column check. -#}
{% macro spark__dot_columns(schemas) %}
  {{ return(none) }}
{% endmacro %}


{% macro spark__dot_dependants(keys) %}
  {% if keys %}
    {{ print("dot-tasks: Spark records no dependencies between views: a view of yours over a live view that is"
           " dropped now is not found first, and fails when it is next read") }}
  {% endif %}
  {{ return([]) }}
{% endmacro %}


{#- What reads a build's schemas before `clean` drops them: Spark records no
    dependencies, and reading every view's text of every schema (SHOW TABLE
    EXTENDED, one metastore walk per schema) is too dear for each clean. So the
    command says what it did not look for. -#}
{% macro spark__dot_reg_dependants(schemas, keys) %}
  {{ print("dot-tasks: Spark records no dependencies between views: a view over " ~ (schemas + keys) | join(', ')
         ~ " from outside it (yours, or a live view) is not looked for, and fails when it is next read") }}
  {{ return([]) }}
{% endmacro %}


{#- A view's SQL text as Spark keeps it (the `View Text` of SHOW TABLE EXTENDED), its backquotes taken out. -#}
{% macro spark__dot_view_sources(schemas) %}
  {% set found = [] %}
  {% for rel in dot_spark_relations(schemas) %}
    {% if rel['is_view'] %}
      {% set text = modules.re.search('(?ms)^View Text: (.*?)\n[A-Z][A-Za-z ]*: ', rel['information']) %}
      {% do found.append([rel['schema'], rel['name'], 'sql', (text.group(1) if text else '').replace('`', '')]) %}
    {% endif %}
  {% endfor %}
  {{ return(found) }}
{% endmacro %}


{#- The diff's queries alias each compared column's 0/1 flag (a CASE WHEN) and filter or sum
    on them; Spark's constraint propagation then infers a constraint per alias substitution and,
    over ten columns, runs the Thrift server's driver out of heap while planning
    (java.lang.OutOfMemoryError in UnaryNode.getAllValidConstraints, after about 100 s, at 2,000
    rows as at a million). `SET` lasts for the Thrift session. -#}
{% macro spark__dot_session_setup(spill_dir, memory_mb) %}
  {% call statement('dot_session_setup') %}set spark.sql.constraintPropagation.enabled = false{% endcall %}
{% endmacro %}
