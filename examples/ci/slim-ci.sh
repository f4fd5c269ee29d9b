#!/bin/sh
# Slim CI for a dbt project with dot-tasks: the steps of github-actions.yml, for any CI.
#
#   sh slim-ci.sh pr     # needs MAIN_SHA and PR_SHA: build the PR against main's build, diff, clean
#   sh slim-ci.sh main   # needs SHA: build main's commit, cache its record, promote it, clean
#
# Run it from the dbt project (dot-tasks looks upward for dbt_project.yml). The
# warehouse keeps main's schema between CI runs; what a fresh checkout lacks is
# main's build record (.dot/isolated_builds/<sha>/<context>/: build.json and
# dbt's manifest), which is cached in DOT_CACHE_DIR. When neither the cache nor
# the warehouse has it, --build-base builds main first.
#
# Optional: BASE_CONTEXT (prod), PR_CONTEXT (dev), KEEP (5 builds per context),
# MAX_AGE (7d: builds of any runner older than this are swept from the warehouse),
# DOT_CACHE_DIR (.dot-cache), COMMENT_FILE (dot-pr-comment.md).
set -eu

BASE_CONTEXT=${BASE_CONTEXT:-prod}
PR_CONTEXT=${PR_CONTEXT:-dev}
KEEP=${KEEP:-5}
MAX_AGE=${MAX_AGE:-7d}
DOT_CACHE_DIR=${DOT_CACHE_DIR:-.dot-cache}
COMMENT_FILE=${COMMENT_FILE:-dot-pr-comment.md}

say() { echo "slim-ci: $*" >&2; }

cache_file() { echo "$DOT_CACHE_DIR/dot-$BASE_CONTEXT-$1.tar.gz"; }

# The record of a build of $1 in BASE_CONTEXT: its commit.json and context
# directory, without the generated profile (it is made again where needed) or logs.
save_base() {
    [ -f "$(cache_file "$1")" ] && return 0
    mkdir -p "$DOT_CACHE_DIR"
    tar -czf "$(cache_file "$1")" --exclude profiles.yml --exclude logs \
        ".dot/isolated_builds/$1/commit.json" ".dot/isolated_builds/$1/$BASE_CONTEXT"
    say "cached the $BASE_CONTEXT build of $1 in $(cache_file "$1")"
}

restore_base() {
    if [ ! -d ".dot/isolated_builds/$1/$BASE_CONTEXT" ] && [ -f "$(cache_file "$1")" ]; then
        tar -xzf "$(cache_file "$1")"
        say "restored the $BASE_CONTEXT build of $1 from $(cache_file "$1")"
    fi
}

case "${1:-}" in
pr)
    : "${MAIN_SHA:?set MAIN_SHA to the base branch's commit}" "${PR_SHA:?set PR_SHA to the pull request's commit}"
    restore_base "$MAIN_SHA"
    # Build what the PR changed (and what depends on it), read the rest from
    # main's schema, then clone the rest so the PR's schema is complete.
    dot-tasks run "$PR_CONTEXT@$PR_SHA" --defer-to "$BASE_CONTEXT@$MAIN_SHA" --build-base --clone
    save_base "$MAIN_SHA"
    # Differences are what the comment is for, not a failure: --exit-zero.
    dot-tasks diff "$BASE_CONTEXT@$MAIN_SHA" "$PR_CONTEXT@$PR_SHA" --no-build --format markdown --exit-zero \
        > "$COMMENT_FILE"
    dot-tasks clean --keep "$KEEP"
    # This runner's .dot knows only its own builds: the warehouse's registry knows
    # every runner's. Sweep the PR schemas nobody has built for a week (live
    # builds, rollback targets and bases still deferred to are kept).
    dot-tasks clean --warehouse --older-than "$MAX_AGE"
    ;;
main)
    : "${SHA:?set SHA to the commit to build and promote}"
    dot-tasks run "$BASE_CONTEXT@$SHA"
    save_base "$SHA"
    dot-tasks promote "$BASE_CONTEXT@$SHA"
    dot-tasks clean --keep "$KEEP"
    ;;
*)
    echo "usage: sh slim-ci.sh pr|main (see the comment at its top)" >&2
    exit 2
    ;;
esac
