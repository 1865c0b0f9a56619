#!/usr/bin/env bash
# make init: write compose/.env from compose/.env.example, with a fresh random value
# for every empty secret, and create the Alertmanager receiver secret files under
# compose/secrets/. Never overwrites: an existing .env keeps every line, and only
# settings new in .env.example are appended (new secrets generated). Idempotent.
set -euo pipefail
cd "$(dirname "$0")/.."

example=compose/.env.example
env_file=${COSTMON_ENV_FILE:-compose/.env}
secrets_dir=${COSTMON_SECRETS_DIR:-compose/secrets}
# Settings whose empty value means "generate one".
generated=(POSTGRES_PASSWORD COSTMON_DB_PASSWORD GRAFANA_DB_READER_PASSWORD GRAFANA_ADMIN_PASSWORD)
# Alertmanager *_file secrets (alertmanager/alertmanager.yml); empty until you fill them.
receiver_secrets=(slack_api_url pagerduty_routing_key smtp_auth_password)

random_secret() {
  # 32 letters and digits: safe inside a postgresql:// URL and a shell word.
  local s=""
  while [ ${#s} -lt 32 ]; do
    s+=$(head -c 64 /dev/urandom | tr -dc 'A-Za-z0-9')
  done
  printf '%s' "${s:0:32}"
}

is_generated() {
  local k
  for k in "${generated[@]}"; do [ "$k" = "$1" ] && return 0; done
  return 1
}

umask 077
created=0
if [ ! -e "$env_file" ]; then
  : > "$env_file"
  created=1
fi
chmod 600 "$env_file"

added=()
while IFS= read -r line || [ -n "$line" ]; do
  if [[ "$line" =~ ^([A-Z][A-Z0-9_]*)=(.*)$ ]]; then
    key=${BASH_REMATCH[1]}
    value=${BASH_REMATCH[2]}
    if [ "$created" -eq 0 ] && grep -q "^${key}=" "$env_file"; then
      continue  # already set by the operator: never touched
    fi
    if is_generated "$key" && [ -z "$value" ]; then
      value=$(random_secret)
    fi
    printf '%s=%s\n' "$key" "$value" >> "$env_file"
    [ "$created" -eq 0 ] && added+=("$key")
  elif [ "$created" -eq 1 ]; then
    printf '%s\n' "$line" >> "$env_file"  # comments and blank lines, on first write only
  fi
done < "$example"

if [ "$created" -eq 1 ]; then
  echo "make init: wrote $env_file with fresh secrets (mode 600)"
elif [ ${#added[@]} -gt 0 ]; then
  echo "make init: $env_file kept; appended new settings: ${added[*]}"
else
  echo "make init: $env_file exists and is complete; nothing changed"
fi

# Receiver secrets: one value per file, read by Alertmanager (uid 65534, "nobody")
# through the *_file fields. Readable by that uid only when we can hand the files
# to its group (run as root); otherwise world-readable in a private-named folder.
mkdir -p "$secrets_dir"
for name in "${receiver_secrets[@]}"; do
  [ -e "$secrets_dir/$name" ] || : > "$secrets_dir/$name"
done
if [ "$(id -u)" -eq 0 ] && chgrp 65534 "$secrets_dir" "${receiver_secrets[@]/#/$secrets_dir/}" 2>/dev/null; then
  chmod 750 "$secrets_dir"
  chmod 640 "${receiver_secrets[@]/#/$secrets_dir/}"
else
  chmod 755 "$secrets_dir"
  chmod 644 "${receiver_secrets[@]/#/$secrets_dir/}"
fi
