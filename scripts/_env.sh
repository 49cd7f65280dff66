# Sourced by scripts/run: the settings of an env file (.env) for the variables the environment
# does not set. The environment wins, as every tool that reads .env has it (`PORT=9000
# ./scripts/run` listens on 9000 whatever .env says).
load_env_file() {
  local file="$1" environment
  # the environment as it is, declared global again once the file is read (readonly: untouched)
  environment="$(export -p | sed -e '/^declare -[a-z]*r[a-z]* /d' -e 's/^declare -\([a-z]*\) /declare -g\1 /')"
  set -a
  # shellcheck source=/dev/null
  source "$file"
  set +a
  eval "$environment"
}
