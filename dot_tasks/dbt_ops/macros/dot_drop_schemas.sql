{#- Drop each schema in `schemas` (in the target's database), if it exists.
    dot-tasks has already checked that every name carries the build's suffix. -#}
{% macro dot_drop_schemas(schemas) %}
  {% for schema in schemas %}
    {% set relation = api.Relation.create(database=target.database, schema=schema) %}
    {% do adapter.drop_schema(relation) %}
    {{ log("dot-tasks: dropped schema " ~ schema, info=True) }}
  {% endfor %}
{% endmacro %}
