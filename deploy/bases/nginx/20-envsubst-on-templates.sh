#!/bin/sh
# TEST-ONLY stand-in (deploy/bases), as the official image's script: /etc/nginx/templates/*.template rendered with
# envsubst into /etc/nginx/conf.d, substituting only the variables whose names match NGINX_ENVSUBST_FILTER.
set -e
template_dir=${NGINX_ENVSUBST_TEMPLATE_DIR:-/etc/nginx/templates}
suffix=${NGINX_ENVSUBST_TEMPLATE_SUFFIX:-.template}
output_dir=${NGINX_ENVSUBST_OUTPUT_DIR:-/etc/nginx/conf.d}
filter=${NGINX_ENVSUBST_FILTER:-}
[ -d "$template_dir" ] || exit 0
# shellcheck disable=SC2016,SC2046 # printf writes literal ${NAME} words; awk's names split on purpose
defined=$(printf '${%s} ' $(awk "END { for (name in ENVIRON) { print ( name ~ /${filter}/ ) ? name : \"\" } }" </dev/null))
find "$template_dir" -follow -type f -name "*$suffix" -print | while read -r template; do
    relative="${template#"$template_dir/"}"
    output="$output_dir/${relative%"$suffix"}"
    mkdir -p "$(dirname "$output")"
    echo "$0: rendering $template to $output"
    envsubst "$defined" <"$template" >"$output"
done
