"""What a node's boot makes of its launch template's user data: the kubelet's labels and taints,
and the CloudWatch agent configuration it starts.

Read by the node mirror (nodemirror.py) for node groups whose launch template names an AMI: EKS
merges nothing into such user data, so a Node carries only the labels and taints its own kubelet
registers with, which that user data passes (plus the ones the kubelet and the cloud provider set
on every Node). This reader is the sandbox's own, written from the formats' documentation and
independent of the collection's renderer, so a renderer bug is not mirrored back as a pass:

* AL2023: a MIME part ``application/node.eks.aws`` holding NodeConfig documents;
  ``spec.kubelet.flags`` carries ``--node-labels=k=v,...`` and ``--register-with-taints=k=v:Effect,...``.
* AL2: a shell part calling ``/etc/eks/bootstrap.sh ... --kubelet-extra-args '<flags>'``.
* Bottlerocket: TOML settings, ``[settings.kubernetes.node-labels]`` (key = "value") and
  ``[settings.kubernetes.node-taints]`` (key = "value:Effect" or a list of them).

User data that says nothing the reader understands yields no labels and no taints, as a kubelet
started without those flags would register.
"""
from __future__ import annotations

import base64
import binascii
import email
import json
import re
import shlex
from dataclasses import dataclass, field

import yaml

try:
    import tomllib
except ImportError:  # pragma: no cover - Python < 3.11
    import tomli as tomllib  # type: ignore[no-redef]

BOOTSTRAP_SH = "/etc/eks/bootstrap.sh"
AGENT_CTL = "amazon-cloudwatch-agent-ctl"
TAINT_EFFECTS = ("NoSchedule", "PreferNoSchedule", "NoExecute")


@dataclass
class Boot:
    """The kubelet registration a node's user data asks for."""

    flavour: str = "unknown"  # nodeadm | bootstrap | bottlerocket | unknown
    labels: dict[str, str] = field(default_factory=dict)
    taints: list[dict] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)


def decode(user_data: str | bytes | None) -> str:
    """Launch template user data (base64, as EC2 stores it) as text; '' when absent or not base64."""
    if not user_data:
        return ""
    try:
        return base64.b64decode(user_data, validate=True).decode("utf-8", errors="replace")
    except (binascii.Error, ValueError):
        return ""


def parts(text: str) -> list[tuple[str, str]]:
    """(content type, body) of every leaf part of a MIME multi-part document, or of the whole text
    as one part whose type is guessed the way cloud-init and the node agents tell them apart."""
    head = text.lstrip()[:400].lower()
    if head.startswith("mime-version:") or head.startswith("content-type: multipart"):
        message = email.message_from_string(text)
        out = []
        for part in message.walk():
            if part.is_multipart():
                continue
            payload = part.get_payload(decode=True) or b""
            out.append((part.get_content_type(), payload.decode("utf-8", errors="replace")))
        return out
    stripped = text.lstrip()
    if stripped.startswith("#!"):
        return [("text/x-shellscript", text)]
    if re.search(r"^\s*kind:\s*NodeConfig\s*$", text, re.M):
        return [("application/node.eks.aws", text)]
    if re.search(r"^\s*\[settings[.\]]", text, re.M):
        return [("application/toml", text)]
    return [("text/plain", text)]


def _flag_values(flags: list[str], name: str) -> list[str]:
    """Values of `--name=value` / `--name value` among kubelet flags, in order."""
    out = []
    it = iter(range(len(flags)))
    for i in it:
        flag = flags[i]
        if flag.startswith(name + "="):
            out.append(flag[len(name) + 1:])
        elif flag == name and i + 1 < len(flags):
            out.append(flags[i + 1])
            next(it, None)
    return out


def _labels_from_flag(value: str, boot: Boot) -> None:
    for item in filter(None, value.split(",")):
        key, sep, val = item.partition("=")
        if not sep or not key:
            boot.problems.append(f"--node-labels item {item!r} is not key=value")
            continue
        boot.labels[key] = val


def _taint(key: str, value: str, effect: str, boot: Boot, source: str) -> None:
    if effect not in TAINT_EFFECTS:
        boot.problems.append(f"{source}: taint {key!r} has effect {effect!r}, not one of {', '.join(TAINT_EFFECTS)}")
        return
    taint = {"key": key, "effect": effect}
    if value:
        taint["value"] = value
    boot.taints.append(taint)


def _taints_from_flag(value: str, boot: Boot) -> None:
    for item in filter(None, value.split(",")):
        key_value, sep, effect = item.rpartition(":")
        if not sep:
            boot.problems.append(f"--register-with-taints item {item!r} has no :Effect")
            continue
        key, _, val = key_value.partition("=")
        _taint(key, val, effect, boot, "--register-with-taints")


def _apply_kubelet_flags(flags: list[str], boot: Boot) -> None:
    for value in _flag_values(flags, "--node-labels"):
        _labels_from_flag(value, boot)
    for value in _flag_values(flags, "--register-with-taints"):
        _taints_from_flag(value, boot)


def _nodeconfig_flags(body: str, boot: Boot) -> list[str] | None:
    try:
        docs = [d for d in yaml.safe_load_all(body) if isinstance(d, dict)]
    except yaml.YAMLError as e:
        boot.problems.append(f"NodeConfig is not YAML: {e}")
        return None
    flags: list[str] | None = None
    for doc in docs:
        if doc.get("kind") != "NodeConfig":
            continue
        flags = flags or []
        kubelet = (doc.get("spec") or {}).get("kubelet") or {}
        flags.extend(str(f) for f in kubelet.get("flags") or [])
    return flags


def _bootstrap_flags(body: str, boot: Boot) -> list[str] | None:
    """Kubelet flags of the shell script's bootstrap.sh call (line continuations joined)."""
    joined = re.sub(r"\\\n", " ", body)
    for line in joined.splitlines():
        if BOOTSTRAP_SH not in line or line.lstrip().startswith("#"):
            continue
        try:
            words = shlex.split(line, comments=True)
        except ValueError as e:
            boot.problems.append(f"bootstrap.sh call cannot be split: {e}")
            return None
        if BOOTSTRAP_SH not in words:
            continue
        extra = _flag_values(words[words.index(BOOTSTRAP_SH) + 1:], "--kubelet-extra-args")
        return [flag for value in extra for flag in shlex.split(value)]
    return None


def _bottlerocket(body: str, boot: Boot) -> bool:
    try:
        settings = tomllib.loads(body).get("settings") or {}
    except tomllib.TOMLDecodeError as e:
        boot.problems.append(f"Bottlerocket settings are not TOML: {e}")
        return False
    kubernetes = settings.get("kubernetes")
    if not isinstance(kubernetes, dict):
        return False
    for key, value in (kubernetes.get("node-labels") or {}).items():
        boot.labels[str(key)] = str(value)
    for key, values in (kubernetes.get("node-taints") or {}).items():
        for entry in values if isinstance(values, list) else [values]:
            value, sep, effect = str(entry).rpartition(":")
            if not sep:
                boot.problems.append(f"node-taints.{key}: {entry!r} has no :Effect")
                continue
            _taint(str(key), value, effect, boot, f"node-taints.{key}")
    return True


def read(user_data: str | bytes | None) -> Boot:
    """The kubelet registration that the base64 launch template user data asks for."""
    boot = Boot()
    for content_type, body in parts(decode(user_data)):
        if content_type == "application/node.eks.aws":
            flags = _nodeconfig_flags(body, boot)
            if flags is not None:
                boot.flavour = "nodeadm"
                _apply_kubelet_flags(flags, boot)
        elif content_type == "text/x-shellscript":
            flags = _bootstrap_flags(body, boot)
            if flags is not None:
                boot.flavour = "bootstrap"
                _apply_kubelet_flags(flags, boot)
        elif content_type in ("application/toml", "text/plain") and _bottlerocket(body, boot):
            boot.flavour = "bottlerocket"
    return boot


_FETCH_CONFIG = re.compile(AGENT_CTL + r"\b[^\n]*?-a\s+fetch-config\b[^\n]*?-c\s+file:(\S+)")


def agent_config(user_data: str | bytes | None) -> dict | None:
    """The CloudWatch agent configuration the user data's shell part starts the agent with (the
    file that `amazon-cloudwatch-agent-ctl -a fetch-config -c file:PATH` loads, as a here-document
    of the same script writes it), or None: no agent is started, or its file is not written there."""
    for content_type, body in parts(decode(user_data)):
        if content_type != "text/x-shellscript":
            continue
        for line in body.splitlines():
            if line.lstrip().startswith("#"):
                continue
            match = _FETCH_CONFIG.search(line)
            if not match:
                continue
            path = match.group(1).strip("'\"")
            heredoc = re.search(r"cat\s*>\s*['\"]?" + re.escape(path) + r"['\"]?\s*<<-?\s*['\"]?(\w+)['\"]?\n(.*?)\n\1\n",
                                body, re.S)
            if not heredoc:
                return None
            try:
                config = json.loads(heredoc.group(2))
            except ValueError:
                return None
            return config if isinstance(config, dict) else None
    return None
