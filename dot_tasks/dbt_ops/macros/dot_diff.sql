{#- Comparing one node's relation in two builds.
    Everything is read-only: selects only, nothing is created in either schema.
    Only counts and at most `sample` rows of each kind come back to Python.

    A compared column arrives as a spec: {"base": its name in base, "head": its name in head,
    "kind": how it is compared (integer, decimal, float, text, boolean, date, timestamp,
    timestamptz, json, other), "cast": none, "double" or "string" (when the two sides' types
    differ)}. Python decides the kind from both sides' types (diffing.compare_kind), so the
    same-database path and the two-database path apply one meaning of "equal". -#}

{% macro dot_diff_session() %}
  {#- run-operation needs a macro to name; dot-tasks runs its calls itself. -#}
  {{ return(none) }}
{% endmacro %}


{#- An identifier, quoted with its quote character doubled: adapter.quote alone does not escape it. -#}
{% macro dot_quote(name) %}
  {%- set q = adapter.quote('x')[0] -%}
  {{- return(adapter.quote(name | string | replace(q, q ~ q))) -}}
{% endmacro %}


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


{#- Row count, and (with a key: its specs, read on side `which`) how many key values repeat and
    how many rows have a NULL in the key. Keys are taken as the join takes them (a key retyped
    across families as text), so that what the check calls one key value is one in the join. -#}
{% macro dot_side_stats(side, key, which=none) %}
  {% set rel = dot_relation(side) %}
  {% if key %}
    {% set exprs = [] %}
    {% for k in key %}{% do exprs.append(dot_comparable(dot_cast(dot_quote(k[which]), k.cast), k.kind)) %}{% endfor %}
    {% set sql = dot_key_stats_sql(rel, exprs) %}
  {% else %}
    {% set sql %}select count(*) as row_count, 0 as duplicate_keys, 0 as null_key_rows from {{ rel }}{% endset %}
  {% endif %}
  {% set row = run_query(sql).rows[0] %}
  {{ return({"rows": row["row_count"] | int, "duplicate_keys": row["duplicate_keys"] | int,
             "null_key_rows": row["null_key_rows"] | int}) }}
{% endmacro %}

{#- The exact key check of one relation: its rows, the key values (`key`: one SQL expression a
    column) found more than once (NULL keys apart) and the rows whose key has a NULL. -#}
{% macro dot_key_stats_sql(rel, key) %}
  {{ return(adapter.dispatch('dot_key_stats_sql', 'dot_tasks_ops')(rel, key)) }}
{% endmacro %}

{#- A GROUP BY of the key: where the warehouse spills a large aggregate (PostgreSQL past
    work_mem) or spreads it (Spark), the usual way. -#}
{% macro default__dot_key_stats_sql(rel, key) %}
  {% set sql %}
    select coalesce(sum(dot__n), 0) as row_count,
           coalesce(sum(case when dot__n > 1 and not dot__nullkey then 1 else 0 end), 0) as duplicate_keys,
           coalesce(sum(case when dot__nullkey then dot__n else 0 end), 0) as null_key_rows
    from (
      select {% for k in key %}dot__g.dot__k{{ loop.index }}, {% endfor %}
             ({% for k in key %}dot__g.dot__k{{ loop.index }} is null{{ " or " if not loop.last }}{% endfor %}) as dot__nullkey,
             count(*) as dot__n
      from (select {% for k in key %}{{ k }} as dot__k{{ loop.index }}{{ ", " if not loop.last }}{% endfor %}
            from {{ rel }}) dot__g
      group by {% for k in key %}dot__g.dot__k{{ loop.index }}{{ ", " if not loop.last }}{% endfor %}
    ) dot__c
  {% endset %}
  {{ return(sql) }}
{% endmacro %}

{#- DuckDB, which runs inside the dbt child: its hash aggregate of every key cannot spill under
    the small memory limit a diff across two files sets (25,000,000 keys failed at 64 MB), while
    its sort can. So the keys are sorted and each compared with the one before: a key equal to
    the one before and not to the one before that begins a repeated value. -#}
{% macro duckdb__dot_key_stats_sql(rel, key) %}
  {%- set window = "over (order by " ~ dot_key_list("dot__g", key) ~ ")" -%}
  {% set sql %}
    select count(*) as row_count,
           coalesce(sum(case when not dot__nullkey and dot__same1 and not dot__same2 then 1 else 0 end), 0) as duplicate_keys,
           coalesce(sum(case when dot__nullkey then 1 else 0 end), 0) as null_key_rows
    from (
      select ({% for k in key %}dot__g.dot__k{{ loop.index }} is null{{ " or " if not loop.last }}{% endfor %}) as dot__nullkey,
             ({% for k in key %}dot__g.dot__k{{ loop.index }} is not distinct from lag(dot__g.dot__k{{ loop.index }}) {{ window }}{{ " and " if not loop.last }}{% endfor %}) as dot__same1,
             coalesce(({% for k in key %}dot__g.dot__k{{ loop.index }} is not distinct from lag(dot__g.dot__k{{ loop.index }}, 2) {{ window }}{{ " and " if not loop.last }}{% endfor %}), false) as dot__same2
      from (select {% for k in key %}{{ k }} as dot__k{{ loop.index }}{{ ", " if not loop.last }}{% endfor %}
            from {{ rel }}) dot__g
    ) dot__c
  {% endset %}
  {{ return(sql) }}
{% endmacro %}

{%- macro dot_key_list(alias, key) -%}
  {%- for k in key %}{{ alias }}.dot__k{{ loop.index }}{{ ", " if not loop.last }}{% endfor -%}
{%- endmacro -%}


{#- ---- Types: one meaning of "equal" ---- -#}

{#- What a side's column is cast to before it is compared, when the two sides' types differ. -#}
{% macro dot_cast(expr, cast) %}
  {%- if cast == 'double' -%}
    {{- return("cast(" ~ expr ~ " as " ~ dot_type_double() ~ ")") -}}
  {%- elif cast == 'string' -%}
    {{- return("cast(" ~ expr ~ " as " ~ dbt.type_string() ~ ")") -}}
  {%- else -%}
    {{- return(expr) -}}
  {%- endif -%}
{% endmacro %}

{% macro dot_type_double() %}
  {{ return(adapter.dispatch('dot_type_double', 'dot_tasks_ops')()) }}
{% endmacro %}

{% macro default__dot_type_double() -%}double precision{%- endmacro %}


{#- A value as the same-database comparison sees it: itself, unless its type has no equality
    (json) or is compared as text (kind other). -#}
{% macro dot_comparable(expr, kind) %}
  {{ return(adapter.dispatch('dot_comparable', 'dot_tasks_ops')(expr, kind)) }}
{% endmacro %}

{% macro default__dot_comparable(expr, kind) -%}
  {%- if kind in ('json', 'other') -%}cast({{ expr }} as {{ dbt.type_string() }}){%- else -%}{{ expr }}{%- endif -%}
{%- endmacro %}

{% macro postgres__dot_comparable(expr, kind) -%}
  {#- json has no equality; jsonb's is the canonical one (key order and spacing aside). -#}
  {%- if kind == 'json' -%}cast({{ expr }} as jsonb)
  {%- elif kind == 'other' -%}cast({{ expr }} as text)
  {%- else -%}{{ expr }}{%- endif -%}
{%- endmacro %}


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


{#- Floats within a relative `tolerance` of each other are equal (NaN equal to NaN, as the
    warehouse's own equality has it on PostgreSQL and DuckDB). -#}
{% macro dot_differs_float(a, b, tolerance) %}
  {%- if not tolerance -%}{{ return(dot_differs(a, b)) }}{%- endif -%}
  {{- return(adapter.dispatch('dot_differs_float', 'dot_tasks_ops')(a, b, tolerance)) -}}
{% endmacro %}

{% macro default__dot_differs_float(a, b, tolerance) -%}
  (case when {{ a }} is null and {{ b }} is null then 0
        when {{ a }} is null or {{ b }} is null then 1
        when {{ a }} = {{ b }} then 0
        when abs({{ a }} - {{ b }}) <= {{ tolerance | float }} * greatest(abs({{ a }}), abs({{ b }})) then 0
        else 1 end)
{%- endmacro %}


{#- A value as text that compares equal exactly when the warehouse's own comparison says equal,
    and that PostgreSQL and DuckDB print alike: numbers by value (trailing zeros of decimals
    dropped, -0 as 0, NaN and infinities spelled one way), timestamps with time zone in UTC,
    json canonical. NULL stays NULL: `dot_encoded` spells it apart from every string.
    With a float tolerance, floats are rounded to the significant digits it allows
    (for the checksums only; the rows compared in Python carry the exact text). -#}
{% macro dot_text(expr, kind='other', tolerance=none) %}
  {{ return(adapter.dispatch('dot_text', 'dot_tasks_ops')(expr, kind, tolerance)) }}
{% endmacro %}

{% macro default__dot_text(expr, kind, tolerance) -%}
  {%- set t = "cast(" ~ expr ~ " as " ~ dbt.type_string() ~ ")" -%}
  {%- if kind == 'decimal' -%}
    (case when {{ expr }} = 0 then '0' when {{ dbt.position("'.'", t) }} > 0 then rtrim(rtrim({{ t }}, '0'), '.') else {{ t }} end)
  {%- elif kind == 'float' -%}
    (case when {{ expr }} = 0 then '0' when {{ expr }} <> {{ expr }} then 'NaN' else {{ t }} end)
  {%- elif kind == 'boolean' -%}
    (case when {{ expr }} then 'true' when not {{ expr }} then 'false' end)
  {%- else -%}
    {{ t }}
  {%- endif -%}
{%- endmacro %}

{% macro postgres__dot_text(expr, kind, tolerance) -%}
  {%- if kind == 'decimal' -%}
    cast(trim_scale({{ expr }}) as text)
  {%- elif kind == 'float' and tolerance -%}
    (case when {{ expr }} in ('NaN', 'Infinity', '-Infinity') then {{ dot_float_text(expr) }}
          else {{ dot_float_text("cast(round(cast(" ~ expr ~ " as numeric), " ~ dot_round_places(expr, tolerance) ~ ") as double precision)") }} end)
  {%- elif kind == 'float' -%}
    {{ dot_float_text(expr) }}
  {%- elif kind == 'boolean' -%}
    (case when {{ expr }} then 'true' when not {{ expr }} then 'false' end)
  {%- elif kind == 'date' -%}
    to_char({{ expr }}, 'YYYY-MM-DD')
  {%- elif kind == 'timestamp' -%}
    to_char({{ expr }}, 'YYYY-MM-DD"T"HH24:MI:SS.US')
  {%- elif kind == 'timestamptz' -%}
    to_char({{ expr }} at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US')
  {%- elif kind == 'json' -%}
    cast(cast({{ expr }} as jsonb) as text)
  {%- else -%}
    cast({{ expr }} as text)
  {%- endif -%}
{%- endmacro %}

{% macro duckdb__dot_text(expr, kind, tolerance) -%}
  {%- if kind == 'decimal' -%}
    {{ default__dot_text(expr, kind, tolerance) }}
  {%- elif kind == 'float' and tolerance -%}
    (case when isnan({{ expr }}) or isinf({{ expr }}) then {{ dot_float_text(expr) }}
          else {{ dot_float_text("round(" ~ expr ~ ", " ~ dot_round_places(expr, tolerance) ~ ")") }} end)
  {%- elif kind == 'float' -%}
    {{ dot_float_text(expr) }}
  {%- elif kind == 'boolean' -%}
    (case when {{ expr }} then 'true' when not {{ expr }} then 'false' end)
  {%- elif kind == 'date' -%}
    strftime({{ expr }}, '%Y-%m-%d')
  {%- elif kind == 'timestamp' -%}
    strftime({{ expr }}, '%Y-%m-%dT%H:%M:%S.%f')
  {%- elif kind == 'timestamptz' -%}
    strftime(timezone('UTC', {{ expr }}), '%Y-%m-%dT%H:%M:%S.%f')
  {%- else -%}
    cast({{ expr }} as varchar)
  {%- endif -%}
{%- endmacro %}


{#- A double's shortest text, spelled alike on PostgreSQL and DuckDB: -0 as 0, NaN and the
    infinities one way, a whole number below 2^53 as an integer (DuckDB writes 1e15 as
    1000000000000000.0, PostgreSQL as 1e+15). -#}
{% macro dot_float_text(expr) %}
  {{ return(adapter.dispatch('dot_float_text', 'dot_tasks_ops')(expr)) }}
{% endmacro %}

{% macro default__dot_float_text(expr) -%}
  (case when {{ expr }} = 0 then '0'
        when {{ expr }} <> {{ expr }} then 'NaN'
        when {{ expr }} = floor({{ expr }}) and abs({{ expr }}) < 9007199254740992
          then cast(cast({{ expr }} as {{ dbt.type_bigint() }}) as {{ dbt.type_string() }})
        else cast({{ expr }} as {{ dbt.type_string() }}) end)
{%- endmacro %}

{% macro postgres__dot_float_text(expr) -%}
  {#- NaN = NaN and 'Infinity' = 'Infinity' in PostgreSQL: the text already agrees. -#}
  (case when {{ expr }} = 0 then '0'
        when {{ expr }} = floor({{ expr }}) and abs({{ expr }}) < 9007199254740992 then cast(cast({{ expr }} as bigint) as text)
        else cast({{ expr }} as text) end)
{%- endmacro %}

{% macro duckdb__dot_float_text(expr) -%}
  (case when {{ expr }} = 0 then '0'
        when isnan({{ expr }}) then 'NaN'
        when isinf({{ expr }}) then (case when {{ expr }} > 0 then 'Infinity' else '-Infinity' end)
        when {{ expr }} = floor({{ expr }}) and abs({{ expr }}) < 9007199254740992 then cast(cast({{ expr }} as bigint) as varchar)
        else cast({{ expr }} as varchar) end)
{%- endmacro %}

{#- Decimal places that keep the significant digits a relative tolerance allows. -#}
{%- macro dot_round_places(expr, tolerance) -%}
  {#- The fewest significant digits d with 10^(1-d) <= tolerance: two values that round alike are within it. -#}
  {%- set found = [] -%}
  {%- for d in range(1, 18) -%}{%- if not found and 10.0 ** (1 - d) <= tolerance | float -%}{%- do found.append(d) -%}{%- endif -%}{%- endfor -%}
  {%- set digits = (found or [17])[0] -%}
  cast({{ digits - 1 }} - floor(log10(abs(case when {{ expr }} = 0 then 1 else {{ expr }} end))) as integer)
{%- endmacro -%}


{#- ---- One database: one query joins the sides. ---- -#}

{#- The full outer join the value diff reads: one row per key with flags only. `dot__bp` and
    `dot__hp` say which sides hold the row (both: matched; base only: removed; head only: added),
    and `dot__d<i>` (0/1) that a matched row's compared column differs. A side holds the row when
    its key has no NULL, so a row whose key has a NULL is on neither side (`dot__bp` = `dot__hp`
    = 0): NULL never matches, and such a key sends the model to the exact key check anyway.
    Presence is read from the key rather than from a constant each side adds, because
    PostgreSQL carries such a constant through an outer join as a placeholder, which cost a
    third of the join (1.44 s against 0.98 s a million rows).
    Each side is first read into generated names only (dot__k<i>, dot__v<i>), so no user column
    can collide with an alias. Keys are joined by their comparable value: a key retyped across
    families is cast to text on both sides. -#}
{% macro dot_joined(base, head, key, columns, tolerance) %}
  {%- set present = {} -%}
  {%- for side in ("b", "h") -%}
    {%- do present.update({side: "(" ~ dot_key_present("dot__" ~ side, key) ~ ")"}) -%}
  {%- endfor %}
  select
    {%- for k in key %}
    coalesce(dot__b.dot__k{{ loop.index }}, dot__h.dot__k{{ loop.index }}) as dot__k{{ loop.index }},
    {%- endfor %}
    {%- for c in columns %}
    {%- set bq = "dot__b.dot__v" ~ loop.index %}
    {%- set hq = "dot__h.dot__v" ~ loop.index %}
    case when {{ present.b }} and {{ present.h }} then
      {%- if c.kind == 'float' %} {{ dot_differs_float(bq, hq, tolerance) }}{% else %} {{ dot_differs(bq, hq) }}{% endif %}
      else 0 end as dot__d{{ loop.index }},
    {%- endfor %}
    case when {{ present.b }} then 1 else 0 end as dot__bp,
    case when {{ present.h }} then 1 else 0 end as dot__hp
  from ({{ dot_side_select(dot_relation(base), key, columns, 'base') }}) dot__b
  full outer join ({{ dot_side_select(dot_relation(head), key, columns, 'head') }}) dot__h
    on {% for k in key %}dot__b.dot__k{{ loop.index }} = dot__h.dot__k{{ loop.index }}{{ " and " if not loop.last }}{% endfor %}
{% endmacro %}

{%- macro dot_key_present(alias, key) -%}
  {%- for k in key %}{{ alias }}.dot__k{{ loop.index }} is not null{{ " and " if not loop.last }}{% endfor -%}
{%- endmacro -%}

{%- macro dot_side_select(rel, key, columns, side) -%}
  select
    {%- for k in key %} {{ dot_comparable(dot_cast(dot_quote(k[side]), k.cast), k.kind) }} as dot__k{{ loop.index }}{{ "," if not loop.last or columns }}{% endfor %}
    {%- for c in columns %} {{ dot_comparable(dot_cast(dot_quote(c[side]), c.cast), c.kind) }} as dot__v{{ loop.index }}{{ "," if not loop.last }}{% endfor %}
  from {{ rel }}
{%- endmacro -%}


{%- macro dot_any_change(columns) -%}
  {%- if columns -%}({% for c in columns %}dot__d{{ loop.index }}{{ " + " if not loop.last }}{% endfor %}) > 0{%- else -%}1 = 0{%- endif -%}
{%- endmacro -%}


{#- Level d on one database, in one statement that joins the sides once: rows only in base,
    only in head, matched and changed, matched and equal; the changes per column; the join's
    own hints of a bad key; and up to `sample` keys of each kind (added, removed, changed) in
    key order, with both sides' values and the flags that say which columns changed (the
    counts' own flags, so samples and counts agree).
    The join is folded as it streams (`dot__g`): every equal matched row into one group, each
    differing row into a group of its own (its kind and key), so what is kept, and read again
    for the totals, the repeated keys and the samples, is one row per differing key, not one a
    row of the table. Summing in the join's own pass is what a count by hand does; where most
    rows are equal the fold costs little more (on PostgreSQL and DuckDB; Spark measured slower
    with it, see docs/spark.md). The sample rows' values are read back by key from each side. -#}
{% macro dot_value_diff(base, head, key, columns, sample, tolerance=none) %}
  {%- set keys -%}{% for k in key %}dot__k{{ loop.index }}{{ ", " if not loop.last }}{% endfor %}{%- endset -%}
  {%- set differing = "dot__bp = 0 or dot__hp = 0 or " ~ dot_any_change(columns) -%}
  {%- set kinds = [("added", "dot__bp = 0 and dot__hp = 1"), ("removed", "dot__bp = 1 and dot__hp = 0"),
                   ("matched", "dot__bp = 1 and dot__hp = 1 and " ~ dot_any_change(columns))] -%}
  {% set sql %}
    with dot__g as {{ dot_materialized() }} (
      select dot__bp, dot__hp,
        case when {{ differing }} then 1 else 0 end as dot__x,
        {%- for k in key %}
        case when {{ differing }} then dot__k{{ loop.index }} end as dot__k{{ loop.index }},
        {%- endfor %}
        count(*) as dot__n
        {%- for c in columns %},
        sum(dot__d{{ loop.index }}) as dot__d{{ loop.index }}
        {%- endfor %}
      from ({{ dot_joined(base, head, key, columns, tolerance) }} {{ dot_evaluated_once() }}) dot__j
      group by dot__bp, dot__hp,
        case when {{ differing }} then 1 else 0 end
        {%- for k in key %},
        case when {{ differing }} then dot__k{{ loop.index }} end
        {%- endfor %}
    ),
    dot__tot as (
      {#- Every row is on one side at least: added = all - in base, removed = all - in head. -#}
      select
        coalesce(sum(case when dot__bp + dot__hp > 0 then dot__n else 0 end), 0) as dot__rows,
        coalesce(sum(dot__bp * dot__n), 0) as dot__base_present,
        coalesce(sum(dot__hp * dot__n), 0) as dot__head_present,
        coalesce(sum(case when dot__x = 1 and dot__bp = 1 and dot__hp = 1 then dot__n else 0 end), 0) as dot__changed,
        coalesce(sum(case when dot__bp + dot__hp = 0 then dot__n else 0 end), 0) as dot__null_key_rows,
        {%- for c in columns %}
        coalesce(sum(dot__d{{ loop.index }}), 0) as dot__c{{ loop.index }},
        {%- endfor %}
        {#- A key repeated among one kind's differing rows (unmatched ones above all), which the
            counts cannot show: its group holds more than one row. -#}
        coalesce(max(case when dot__x = 1 then dot__n else 0 end), 0) as dot__maxmult,
        {#- Level c in the same statement: a second query per side would be a second round trip. -#}
        (select count(*) from {{ dot_relation(base) }}) as dot__base_rows,
        (select count(*) from {{ dot_relation(head) }}) as dot__head_rows
      from dot__g
    ),
    dot__s as (
      {%- for name, where in kinds %}
      select * from (
        select '{{ name }}' as dot__kind, {{ keys }}{% for c in columns %}, case when dot__d{{ loop.index }} > 0 then 1 else 0 end as dot__d{{ loop.index }}{% endfor %}
        from dot__g where dot__x = 1 and {{ where }}
        order by {{ keys }}
        limit {{ sample | int }}
      ) dot__s{{ loop.index }}
      {{ "union all" if not loop.last }}
      {%- endfor %}
    )
    select dot__tot.*, dot__s.dot__kind{% for k in key %}, dot__s.dot__k{{ loop.index }}{% endfor %}
      {%- for c in columns %}, dot__s.dot__d{{ loop.index }}, dot__bv.dot__v{{ loop.index }} as dot__b{{ loop.index }}, dot__hv.dot__v{{ loop.index }} as dot__h{{ loop.index }}{% endfor %}
    from dot__tot
    left join dot__s on 1 = 1
    left join ({{ dot_sampled_rows(base, key, columns, 'base') }}) dot__bv
      on {% for k in key %}dot__s.dot__k{{ loop.index }} = dot__bv.dot__k{{ loop.index }}{{ " and " if not loop.last }}{% endfor %}
    left join ({{ dot_sampled_rows(head, key, columns, 'head') }}) dot__hv
      on {% for k in key %}dot__s.dot__k{{ loop.index }} = dot__hv.dot__k{{ loop.index }}{{ " and " if not loop.last }}{% endfor %}
    order by dot__s.dot__kind{% for k in key %}, dot__s.dot__k{{ loop.index }}{% endfor %}
  {% endset %}
  {% set table = run_query(sql) %}
  {% set first = table.rows[0] %}
  {% set per_column = [] %}
  {% for c in columns %}{% do per_column.append(first["dot__c" ~ loop.index] | int) %}{% endfor %}
  {% set rows = [] %}
  {% for row in table.rows if row["dot__kind"] is not none %}
    {% set key_values = [] %}{% set b = [] %}{% set h = [] %}{% set d = [] %}
    {% for k in key %}{% do key_values.append(row["dot__k" ~ loop.index]) %}{% endfor %}
    {% for c in columns %}
      {% do b.append(row["dot__b" ~ loop.index]) %}{% do h.append(row["dot__h" ~ loop.index]) %}
      {% do d.append(row["dot__d" ~ loop.index] | int) %}
    {% endfor %}
    {% do rows.append({"kind": row["dot__kind"], "key": key_values, "base": b, "head": h, "differs": d}) %}
  {% endfor %}
  {#- max_multiplicity > 1: a key repeats among the rows of one kind, which the counts cannot show. -#}
  {%- set all_rows, in_base, in_head = first["dot__rows"] | int, first["dot__base_present"] | int, first["dot__head_present"] | int -%}
  {{ return({"added": all_rows - in_base, "removed": all_rows - in_head, "changed": first["dot__changed"] | int,
             "unchanged": in_base + in_head - all_rows - (first["dot__changed"] | int),
             "per_column": per_column, "base_present": in_base, "head_present": in_head,
             "null_key_rows": first["dot__null_key_rows"] | int,
             "base_rows": first["dot__base_rows"] | int, "head_rows": first["dot__head_rows"] | int,
             "rows": rows, "max_multiplicity": first["dot__maxmult"] | int}) }}
{% endmacro %}

{#- One side's rows whose key is among the samples' (`dot__s`): a semi-join on a handful of
    keys, so each side is read once more, not joined again. -#}
{%- macro dot_sampled_rows(side, key, columns, which) -%}
  {%- set keys %}{% for k in key %}dot__k{{ loop.index }}{{ ", " if not loop.last }}{% endfor %}{% endset -%}
  select * from ({{ dot_side_select(dot_relation(side), key, columns, which) }}) dot__r
  where ({{ keys }}) in (select {{ keys }} from dot__s)
{%- endmacro -%}

{#- What a session of dot-tasks' own queries (a diff's jobs, a diff session) needs on this engine
    before it runs them (the dbt child runs it once on each connection); see spark__ in
    dot_spark.sql. `spill_dir` is given to the sessions of a diff across two databases, whose
    memory must not grow with the table: an engine that runs inside the dbt child spills there
    past a small limit. -#}
{% macro dot_session_setup(spill_dir=none, memory_mb=none) %}
  {{ return(adapter.dispatch('dot_session_setup', 'dot_tasks_ops')(spill_dir, memory_mb)) }}
{% endmacro %}

{% macro default__dot_session_setup(spill_dir, memory_mb) %}
{% endmacro %}

{#- DuckDB runs in the dbt child. Its exact key check (a GROUP BY of every key) held a hash table
    of all 2,000,000 keys, and its checksums' aggregate grew with the rows: 83 to 91 MB more at
    2,000,000 rows than at 10,000. Past `memory_mb` of its own memory (32 MB; a query that needs
    more is run again with more, see child_ops.SESSION_MEMORY_MB) it spills to `spill_dir` (the
    diff's scratch, removed after), so only what DuckDB does not manage (about 25 MB at 2,000,000
    rows) still grows. -#}
{% macro duckdb__dot_session_setup(spill_dir, memory_mb) %}
  {% if spill_dir %}
    {% call statement('dot_session_setup') %}
      {% if memory_mb %}set memory_limit = '{{ memory_mb | int }}MB'{% else %}reset memory_limit{% endif %};
      set temp_directory = '{{ spill_dir | replace("'", "''") }}'
    {% endcall %}
  {% endif %}
{% endmacro %}

{#- PostgreSQL's JIT inlines and optimises a plan whose estimated cost passes a threshold, and a
    diff's plan over tables no ANALYZE has seen (a fresh build's) is estimated at billions: its
    wide CASE expressions then took 0.5 to 1 s to optimise before a million-row join that runs in
    1.6 s. JIT's plain compilation stays on. The settings belong to the job's transaction, like
    its reads: a rollback would only make the job slower, never its counts different. -#}
{% macro postgres__dot_session_setup(spill_dir, memory_mb) %}
  {% call statement('dot_session_setup', auto_begin=True) %}
    set jit_inline_above_cost = -1; set jit_optimize_above_cost = -1
  {% endcall %}
{% endmacro %}

{#- Where the warehouse would otherwise fold a subquery's expressions into the query above it
    and evaluate each again where it is used, what keeps the subquery whole. PostgreSQL pulls
    the join's flag expressions up into the grouping above, which then computed every flag two
    or three times (2.7 s against 2.05 s a million rows with `offset 0`). -#}
{% macro dot_evaluated_once() %}
  {{ return(adapter.dispatch('dot_evaluated_once', 'dot_tasks_ops')()) }}
{% endmacro %}

{% macro default__dot_evaluated_once() %}{{ return("") }}{% endmacro %}
{% macro postgres__dot_evaluated_once() %}{{ return("offset 0") }}{% endmacro %}

{#- `materialized` where a CTE read more than once should be computed once and the warehouse
    lets us say so; elsewhere nothing (the warehouse decides). -#}
{% macro dot_materialized() %}
  {{ return(adapter.dispatch('dot_materialized', 'dot_tasks_ops')()) }}
{% endmacro %}

{% macro default__dot_materialized() %}{{ return("") }}{% endmacro %}
{% macro postgres__dot_materialized() %}{{ return("materialized") }}{% endmacro %}
{% macro duckdb__dot_materialized() %}{{ return("materialized") }}{% endmacro %}


{#- ---- Two databases: no query can join the sides, so each side hashes its own rows. ---- -#}

{#- A value's normalised text (dot_text), encoded so that a row's values can be joined without
    ambiguity: `<length>:<text>`, and NULL as `~`, which no encoded string begins with. -#}
{%- macro dot_encoded(text_expr) -%}
  coalesce(cast(length({{ text_expr }}) as {{ dbt.type_string() }}) || ':' || {{ text_expr }}, '~')
{%- endmacro -%}

{%- macro dot_row_text(specs, side, tolerance) -%}
  {%- if not specs -%}''{%- else -%}
  {%- for s in specs -%}
    {{ dot_encoded(dot_text(dot_cast(dot_quote(s[side]), s.cast), s.kind, tolerance)) }}{{ " || " if not loop.last }}
  {%- endfor -%}
  {%- endif -%}
{%- endmacro -%}


{#- A text's hash as a non-negative integer below 2^60. `portable` (two different adapters)
    forces the default, which every engine with md5 computes alike. -#}
{% macro dot_hash_int(text_expr, portable=false) %}
  {%- if portable -%}{{ return(default__dot_hash_int(text_expr)) }}{%- endif -%}
  {{ return(adapter.dispatch('dot_hash_int', 'dot_tasks_ops')(text_expr)) }}
{% endmacro %}

{% macro default__dot_hash_int(text_expr) -%}
  {%- set hex = dbt.hash(text_expr) -%}
  ({% for i in range(15) %}cast({{ dbt.position("substr(" ~ hex ~ ", " ~ (i + 1) ~ ", 1)", "'0123456789abcdef'") }} - 1 as {{ dbt.type_bigint() }}) * {{ 16 ** (14 - i) }}{{ " + " if not loop.last }}{% endfor %})
{%- endmacro %}

{% macro postgres__dot_hash_int(text_expr) -%}
  (hashtextextended({{ text_expr }}, 0) & 1152921504606846975)
{%- endmacro %}

{% macro duckdb__dot_hash_int(text_expr) -%}
  cast(hash({{ text_expr }}) >> 4 as bigint)
{%- endmacro %}


{#- Each row's key hash (dot__kh) and, with columns, its row hash (dot__rh); or with `texts`, the
    key's and columns' exact normalised texts (dot__v<i>) instead. Generated names only. -#}
{%- macro dot_hashed(side, key, columns, which, tolerance, portable, texts=false) -%}
  select {{ dot_values_hash(key, which, none, portable) }} as dot__kh
  {%- if texts -%}
    {%- for s in key + columns %}, {{ dot_text(dot_cast(dot_quote(s[which]), s.cast), s.kind) }} as dot__v{{ loop.index }}{% endfor %}
  {%- else -%}
    , {{ dot_values_hash(key + columns, which, tolerance, portable) }} as dot__rh
  {%- endif %}
  from {{ dot_relation(side) }}
{%- endmacro -%}


{#- The hash of a row's `specs` values as an integer below 2^60, equal on both sides exactly
    when the values are equal. On one engine (not `portable`) a column of the same type on both
    sides is hashed as it is, by the warehouse's own hash for that type, which agrees with its
    equality (-0 and 0, NaN, 1.0 and 1.00, one instant in two time zones); only the others
    (retyped, json, floats under a tolerance) go through their normalised text. Building that
    text costs far more than hashing the value. -#}
{%- macro dot_values_hash(specs, which, tolerance, portable) -%}
  {%- set values = [] -%}
  {%- for s in specs if not portable -%}
    {%- do values.append(dot_quote(s[which]) if dot_hashed_as_is(s, tolerance) else dot_encoded(dot_text(dot_cast(dot_quote(s[which]), s.cast), s.kind, tolerance))) -%}
  {%- endfor -%}
  {%- set hashed = dot_native_hash(values) if values else none -%}
  {{- hashed if hashed is not none else dot_hash_int(dot_row_text(specs, which, tolerance), portable) -}}
{%- endmacro -%}

{%- macro dot_hashed_as_is(spec, tolerance) -%}
  {%- if not spec.get('same_type') or spec.cast -%}{{ return(false) }}{%- endif -%}
  {%- if spec.kind == 'float' -%}{{ return(not tolerance) }}{%- endif -%}
  {{ return(spec.kind in dot_kinds_hashed_as_they_are()) }}
{%- endmacro -%}

{#- The kinds (besides float) whose values the engine's own hash tells apart exactly as its equality does. -#}
{% macro dot_kinds_hashed_as_they_are() %}
  {{ return(adapter.dispatch('dot_kinds_hashed_as_they_are', 'dot_tasks_ops')()) }}
{% endmacro %}

{% macro default__dot_kinds_hashed_as_they_are() %}
  {{ return(('integer', 'decimal', 'text', 'boolean', 'date', 'timestamp', 'timestamptz')) }}
{% endmacro %}

{% macro postgres__dot_kinds_hashed_as_they_are() %}
  {#- Not numeric: its hash gives NaN, Infinity and -Infinity one value (the seed), so a change
      between them would be missed; numerics are hashed by their normalised text. -#}
  {{ return(('integer', 'text', 'boolean', 'date', 'timestamp', 'timestamptz')) }}
{% endmacro %}

{#- Several values' combined hash, below 2^60, by the warehouse's own per-type hashes; none
    where the adapter has none we trust (then the normalised text is hashed). -#}
{% macro dot_native_hash(exprs) %}
  {{ return(adapter.dispatch('dot_native_hash', 'dot_tasks_ops')(exprs)) }}
{% endmacro %}

{% macro default__dot_native_hash(exprs) %}{{ return(none) }}{% endmacro %}

{% macro postgres__dot_native_hash(exprs) %}
  {#- hash_record_extended (PostgreSQL 14 and later) hashes each field with its type's own
      extended hash, the one hash partitioning relies on: stable across servers. A NULL field
      hashes as 0, a float zero as the seed and a numeric zero as the seed minus one: with
      seed 0 or 1 a change from NULL to zero would hash alike, so the seed is 7. -#}
  {{ return("(hash_record_extended(row(" ~ exprs | join(", ") ~ "), 7) & 1152921504606846975)") }}
{% endmacro %}

{% macro duckdb__dot_native_hash(exprs) %}
  {{ return("cast(hash(" ~ exprs | join(", ") ~ ") >> 4 as bigint)") }}
{% endmacro %}

{%- macro dot_in_buckets(bits, buckets) -%}
  {%- if buckets is none -%}1 = 1{%- else -%}
  mod(dot__kh, {{ 2 ** bits }}) in ({% for b in buckets %}{{ b | int }}{{ ", " if not loop.last }}{% endfor %})
  {%- endif -%}
{%- endmacro -%}


{#- Per bucket of key hashes (the low `bits` bits), within the `parents` buckets of `parent_bits`
    if given: the row count and the sum of the rows' hashes, in bucket order. Returns the SQL:
    dot-tasks streams its rows (one per bucket) rather than holding them. -#}
{% macro dot_bucket_checksums(side, which, key, columns, bits, parent_bits, parents, tolerance=none, portable=false) %}
  {% set sql %}
    select mod(dot__kh, {{ 2 ** bits }}) as bucket, count(*) as n, sum(dot__rh) as s
    from ({{ dot_hashed(side, key, columns, which, tolerance, portable) }}) dot__x
    where {{ dot_in_buckets(parent_bits, parents) }}
    group by mod(dot__kh, {{ 2 ** bits }})
    order by 1
  {% endset %}
  {{ return(sql) }}
{% endmacro %}


{#- The rows of the `buckets` of `bits` (all rows if none), in key-hash order: the key hash,
    then each key column's and compared column's exact normalised text (NULL as NULL). With
    `hash_range` [low, high), only the rows whose key hash falls in it: the caller reads a
    large set in ranges, so no sort, here or in the warehouse, holds more than one range. -#}
{% macro dot_bucket_rows(side, which, key, columns, bits, buckets, portable=false, hash_range=none) %}
  {% set sql %}
    select * from ({{ dot_hashed(side, key, columns, which, none, portable, true) }}) dot__x
    where {{ dot_in_buckets(bits, buckets) }}
    {%- if hash_range %} and dot__kh >= {{ hash_range[0] | int }} and dot__kh < {{ hash_range[1] | int }}{% endif %}
    order by dot__kh
  {% endset %}
  {{ return(sql) }}
{% endmacro %}
