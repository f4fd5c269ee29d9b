{#- Drop each schema in `schemas` (in the target's database), if it exists.
    dot-tasks has already checked that every name carries the build's suffix. -#}
{% macro dot_drop_schemas(schemas) %}
  {#- Spark, MySQL and ClickHouse have no database above the schema: their target has none. -#}
  {% set database = target.database if target.database is defined else none %}
  {% for schema in schemas %}
    {% set relation = api.Relation.create(database=database, schema=schema) %}
    {% do adapter.drop_schema(relation) %}
    {{ log("dot-tasks: dropped schema " ~ schema, info=True) }}
  {% endfor %}
{% endmacro %}
