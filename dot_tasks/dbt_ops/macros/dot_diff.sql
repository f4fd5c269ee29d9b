{#- Comparing one node's relation in two builds that share a connection.
    Everything is read-only: selects only, nothing is created in either schema.
    Only counts and at most `sample` rows of each kind come back to Python. -#}

{% macro dot_diff_session() %}
  {#- run-operation needs a macro to name; dot-tasks runs its calls itself. -#}
  {{ return(none) }}
{% endmacro %}


{%- macro dot_quote_all(names, prefix='') -%}
  {%- for name in names -%}{{ prefix }}{{ adapter.quote(name) }}{{ ", " if not loop.last }}{%- endfor -%}
{%- endmacro -%}


{#- 1 when a and b differ, NULL against NULL counting as equal; 0 otherwise. -#}
{% macro dot_differs(a, b) %}
  {{ return(adapter.dispatch('dot_differs', 'dot_tasks_ops')(a, b)) }}
{% endmacro %}

{% macro default__dot_differs(a, b) -%}
  (case when {{ a }} = {{ b }} or ({{ a }} is null and {{ b }} is null) then 0 else 1 end)
{%- endmacro %}

{% macro postgres__dot_differs(a, b) -%}
  (case when {{ a }} is distinct from {{ b }} then 1 else 0 end)
{%- endmacro %}

{% macro duckdb__dot_differs(a, b) -%}
  (case when {{ a }} is distinct from {{ b }} then 1 else 0 end)
{%- endmacro %}


{% macro dot_relation(side) %}
  {{ return(api.Relation.create(database=side.database, schema=side.schema, identifier=side.identifier)) }}
{% endmacro %}


{#- The relation's columns as the warehouse reports them, or none when it does not exist. -#}
{% macro dot_columns_of(side) %}
  {% if side is none %}{{ return(none) }}{% endif %}
  {#- A relation has at least one column, so none means it does not exist (one query, not two). -#}
  {% set columns = [] %}
  {% for column in adapter.get_columns_in_relation(dot_relation(side)) %}
    {% do columns.append({"name": column.name, "type": column.data_type}) %}
  {% endfor %}
  {{ return(columns if columns else none) }}
{% endmacro %}


{#- Row count, and (with a key) how many key values repeat and how many rows have a NULL in the key. -#}
{% macro dot_side_stats(side, key) %}
  {% set rel = dot_relation(side) %}
  {% if key %}
    {% set null_key -%}
      ({% for k in key %}{{ adapter.quote(k) }} is null{{ " or " if not loop.last }}{% endfor %})
    {%- endset %}
    {% set sql %}
      select count(*) as key_values,
             coalesce(sum(dot__n), 0) as row_count,
             coalesce(sum(case when dot__n > 1 and not {{ null_key }} then 1 else 0 end), 0) as duplicate_keys,
             coalesce(sum(case when {{ null_key }} then dot__n else 0 end), 0) as null_key_rows
      from (select {{ dot_quote_all(key) }}, count(*) as dot__n from {{ rel }} group by {{ dot_quote_all(key) }}) dot__g
    {% endset %}
  {% else %}
    {% set sql %}select count(*) as row_count, 0 as duplicate_keys, 0 as null_key_rows from {{ rel }}{% endset %}
  {% endif %}
  {% set row = run_query(sql).rows[0] %}
  {{ return({"rows": row["row_count"] | int, "duplicate_keys": row["duplicate_keys"] | int,
             "null_key_rows": row["null_key_rows"] | int}) }}
{% endmacro %}


{#- The full outer join both value queries read: one row per key, a 0/1 flag per compared
    column (`dot__d<i>`), and with `with_values` both sides' values (`dot__b<i>`, `dot__h<i>`).
    Columns whose type differs between the sides (`as_text`) are compared as text. -#}
{% macro dot_joined(base, head, key, columns, as_text, with_values) %}
  {%- set b = dot_relation(base) -%}
  {%- set h = dot_relation(head) -%}
  {%- set wanted = key + columns -%}
  select
    case when dot__b.dot__in is null then 'added' when dot__h.dot__in is null then 'removed' else 'matched' end as dot__kind,
    {%- for k in key %}
    coalesce(dot__b.{{ adapter.quote(k) }}, dot__h.{{ adapter.quote(k) }}) as dot__k{{ loop.index }},
    {%- endfor %}
    {%- for c in columns %}
    {%- set bq = "dot__b." ~ adapter.quote(c) %}
    {%- set hq = "dot__h." ~ adapter.quote(c) %}
    {%- if c in as_text %}
      {%- set bq = "cast(" ~ bq ~ " as " ~ dbt.type_string() ~ ")" %}
      {%- set hq = "cast(" ~ hq ~ " as " ~ dbt.type_string() ~ ")" %}
    {%- endif %}
    case when dot__b.dot__in = 1 and dot__h.dot__in = 1 then {{ dot_differs(bq, hq) }} else 0 end as dot__d{{ loop.index }},
    {%- if with_values %}
    {{ bq }} as dot__b{{ loop.index }}, {{ hq }} as dot__h{{ loop.index }},
    {%- endif %}
    {%- endfor %}
    case when dot__b.dot__in = 1 then 1 else 0 end as dot__bp,
    case when dot__h.dot__in = 1 then 1 else 0 end as dot__hp,
    case when dot__b.dot__in = 1 and ({% for k in key %}dot__b.{{ adapter.quote(k) }} is null{{ " or " if not loop.last }}{% endfor %}) then 1 else 0 end as dot__bn,
    case when dot__h.dot__in = 1 and ({% for k in key %}dot__h.{{ adapter.quote(k) }} is null{{ " or " if not loop.last }}{% endfor %}) then 1 else 0 end as dot__hn
  from (select 1 as dot__in, {{ dot_quote_all(wanted) }} from {{ b }}) dot__b
  full outer join (select 1 as dot__in, {{ dot_quote_all(wanted) }} from {{ h }}) dot__h
    on {% for k in key %}dot__b.{{ adapter.quote(k) }} = dot__h.{{ adapter.quote(k) }}{{ " and " if not loop.last }}{% endfor %}
{% endmacro %}


{%- macro dot_any_change(columns) -%}
  {%- if columns -%}({% for c in columns %}dot__d{{ loop.index }}{{ " + " if not loop.last }}{% endfor %}) > 0{%- else -%}1 = 0{%- endif -%}
{%- endmacro -%}


{#- Rows only in base, only in head, matched and changed, matched and equal; changes per column. -#}
{% macro dot_values(base, head, key, columns, as_text) %}
  {% set sql %}
    select
      coalesce(sum(case when dot__kind = 'added' then 1 else 0 end), 0) as added,
      coalesce(sum(case when dot__kind = 'removed' then 1 else 0 end), 0) as removed,
      coalesce(sum(case when dot__kind = 'matched' and {{ dot_any_change(columns) }} then 1 else 0 end), 0) as changed,
      coalesce(sum(case when dot__kind = 'matched' and not ({{ dot_any_change(columns) }}) then 1 else 0 end), 0) as unchanged,
      coalesce(sum(dot__bp), 0) as base_present,
      coalesce(sum(dot__hp), 0) as head_present,
      coalesce(sum(dot__bn), 0) as base_null_keys,
      coalesce(sum(dot__hn), 0) as head_null_keys
      {%- for c in columns %},
      coalesce(sum(dot__d{{ loop.index }}), 0) as dot__c{{ loop.index }}
      {%- endfor %}
    from ({{ dot_joined(base, head, key, columns, as_text, false) }}) dot__j
  {% endset %}
  {% set row = run_query(sql).rows[0] %}
  {% set per_column = {} %}
  {% for c in columns %}{% do per_column.update({c: row["dot__c" ~ loop.index] | int}) %}{% endfor %}
  {{ return({"added": row["added"] | int, "removed": row["removed"] | int, "changed": row["changed"] | int,
             "unchanged": row["unchanged"] | int, "columns": per_column,
             "base_present": row["base_present"] | int, "head_present": row["head_present"] | int,
             "base_null_keys": row["base_null_keys"] | int, "head_null_keys": row["head_null_keys"] | int}) }}
{% endmacro %}


{#- Up to `sample` keys of each kind (added, removed, changed), in key order, with both sides' values,
    and how often the most repeated key occurs among the differing rows of one kind. -#}
{% macro dot_samples(base, head, key, columns, as_text, sample) %}
  {%- set keys %}{% for k in key %}dot__k{{ loop.index }}{{ ", " if not loop.last }}{% endfor %}{% endset -%}
  {% set sql %}
    select * from (
      select dot__m.*,
        row_number() over (partition by dot__kind order by {{ keys }}) as dot__rn,
        max(dot__mult) over () as dot__maxmult
      from (
        select dot__j.*, count(*) over (partition by dot__kind, {{ keys }}) as dot__mult
        from ({{ dot_joined(base, head, key, columns, as_text, true) }}) dot__j
        where dot__kind <> 'matched' or {{ dot_any_change(columns) }}
      ) dot__m
    ) dot__s
    where dot__rn <= {{ sample | int }}
    order by dot__kind{% for k in key %}, dot__k{{ loop.index }}{% endfor %}
  {% endset %}
  {% set rows = [] %}
  {% set most = [0] %}
  {% for row in run_query(sql).rows %}
    {% if (row["dot__maxmult"] | int) > most[0] %}{% do most.append(row["dot__maxmult"] | int) %}{% do most.pop(0) %}{% endif %}
    {% set key_values = [] %}{% set b = [] %}{% set h = [] %}
    {% for k in key %}{% do key_values.append(row["dot__k" ~ loop.index]) %}{% endfor %}
    {% for c in columns %}{% do b.append(row["dot__b" ~ loop.index]) %}{% do h.append(row["dot__h" ~ loop.index]) %}{% endfor %}
    {% do rows.append({"kind": row["dot__kind"], "key": key_values, "base": b, "head": h}) %}
  {% endfor %}
  {#- max_multiplicity > 1: a key repeats among the rows on one side only, which the counts cannot show. -#}
  {{ return({"rows": rows, "max_multiplicity": most[0]}) }}
{% endmacro %}


{#- ---- Two databases: no query can join the sides, so each side hashes its own rows. ---- -#}

{#- A value as text that PostgreSQL and DuckDB (and other engines) print alike; NULL as \N. -#}
{% macro dot_text(expr) %}
  {{ return(adapter.dispatch('dot_text', 'dot_tasks_ops')(expr)) }}
{% endmacro %}

{% macro default__dot_text(expr) -%}
  coalesce(cast({{ expr }} as {{ dbt.type_string() }}), '\N')
{%- endmacro %}


{%- macro dot_row_text(names) -%}
  {%- if not names -%}''{%- else -%}
  {%- set parts = [] -%}
  {%- for name in names -%}
    {%- do parts.append(dot_text(adapter.quote(name))) -%}
    {%- if not loop.last %}{% do parts.append("'|'") %}{% endif -%}
  {%- endfor -%}
  {{ dbt.concat(parts) }}
  {%- endif -%}
{%- endmacro -%}


{#- The first 8 hex digits of `hexdigits` from `start` (1-based), as an integer, written portably
    (in bigint: 15 * 16^7 overflows PostgreSQL's integer). -#}
{%- macro dot_hex_int(hexdigits, start) -%}
  ({% for i in range(8) %}cast({{ dbt.position("substr(" ~ hexdigits ~ ", " ~ (start + i) ~ ", 1)", "'0123456789abcdef'") }} - 1 as {{ dbt.type_bigint() }}) * {{ 16 ** (7 - i) }}{{ " + " if not loop.last }}{% endfor %})
{%- endmacro -%}


{%- macro dot_hashed(side, key, columns) -%}
  select {{ dbt.hash(dot_row_text(key)) }} as dot__h,
         {{ dbt.hash(dbt.concat([dot_row_text(key), "'|'", dot_row_text(columns)])) }} as dot__r
  from {{ dot_relation(side) }}
{%- endmacro -%}


{%- macro dot_in_buckets(buckets) -%}
  {%- set by_length = {} -%}
  {%- for b in buckets -%}{% do by_length.setdefault(b | length, []).append(b) %}{%- endfor -%}
  ({% for length, group in by_length.items() %}substr(dot__h, 1, {{ length }}) in ({% for b in group %}'{{ b }}'{{ ", " if not loop.last }}{% endfor %}){{ " or " if not loop.last }}{% endfor %})
{%- endmacro -%}


{#- Per bucket of key hashes (the first `depth` hex digits), within `parents` if given:
    the row count and two order-independent sums of the rows' hashes. -#}
{% macro dot_bucket_checksums(side, key, columns, depth, parents) %}
  {% set sql %}
    select dot__b as bucket, count(*) as n, sum(dot__s1) as s1, sum(dot__s2) as s2
    from (
      select substr(dot__h, 1, {{ depth | int }}) as dot__b,
             {{ dot_hex_int("dot__r", 1) }} as dot__s1, {{ dot_hex_int("dot__r", 9) }} as dot__s2
      from ({{ dot_hashed(side, key, columns) }}) dot__x
      {% if parents %}where {{ dot_in_buckets(parents) }}{% endif %}
    ) dot__y
    group by dot__b
  {% endset %}
  {% set out = [] %}
  {% for row in run_query(sql).rows %}
    {% do out.append({"bucket": row["bucket"], "n": row["n"] | int, "s1": row["s1"] | int, "s2": row["s2"] | int}) %}
  {% endfor %}
  {{ return(out) }}
{% endmacro %}


{#- The rows in `buckets`, as normalised text: key columns, then compared columns. -#}
{% macro dot_bucket_rows(side, key, columns, buckets) %}
  {% set names = key + columns %}
  {% set sql %}
    select {% for name in names %}{{ dot_text(adapter.quote(name)) }} as dot__v{{ loop.index }}{{ ", " if not loop.last }}{% endfor %}
    from (select {{ dbt.hash(dot_row_text(key)) }} as dot__h, * from {{ dot_relation(side) }}) dot__x
    where {{ dot_in_buckets(buckets) }}
  {% endset %}
  {% set out = [] %}
  {% for row in run_query(sql).rows %}
    {% set values = [] %}
    {% for name in names %}{% do values.append(row["dot__v" ~ loop.index]) %}{% endfor %}
    {% do out.append(values) %}
  {% endfor %}
  {{ return(out) }}
{% endmacro %}
