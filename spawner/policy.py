"""The group policy at spawn time (a mixin for both spawners): :mod:`codespace.policy`.

``policy_file`` names the admin's policy (YAML); a user's rules are the union of their
JupyterHub groups' (which the login provider manages). Checks happen where requests arrive:

- the options, before anything starts (the REST API, the form, launch links: the spawner's
  ``apply_user_options``, so a refusal is a 400 naming the rule and the group and leaves no
  server behind, :mod:`hub.refusals`): the profile, the datasets picked, and how many
  codespaces the user already runs (:meth:`PolicyMixin.check_policy_options`);
- the repository's own requests, once its spec is read (:meth:`check_policy_spec`): the
  GPUs over the user's running codespaces, each codespace's CPU and memory, its datasets;
- inside the codespace: jobs, deployments and dataset mounts, by the server extension with
  the user's rules passed in :data:`~codespace.policy.POLICY_ENV` (:meth:`policy_env`), and
  by the hub's deploy service for local deployments.

The form offers only what the user may pick (:meth:`allowed_profile_slugs`,
:meth:`allowed_dataset_names`). The file is read again when it changes; a file that has
become invalid keeps the last good rules (and the hub logs why).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any

from tornado import web
from traitlets import Float, HasTraits, Unicode

from codespace.policy import POLICY_ENV, Effective, PolicyRefused, read_policy
from codespace.policy.gpu import gpu_amount
from codespace.spec.model import Codespace


def start_refused(error: Exception) -> web.HTTPError:
    """A start that ends for a reason of the request (the policy, a GPU, the repository) as
    a 400 with that reason: what the REST API and the spawn page show, not a 500."""
    refusal = web.HTTPError(400, str(error), reason="Start refused")
    refusal.jupyterhub_message = str(error)  # type: ignore[attr-defined]
    return refusal


def group_names(user: Any) -> list[str]:
    """The JupyterHub groups of ``user`` (orm groups or plain names)."""
    return [getattr(group, "name", group) for group in getattr(user, "groups", None) or []]


class PolicyMixin(HasTraits):
    """``policy_file`` and the checks (needs the spawner's ``user`` and ``name``)."""

    policy_file = Unicode(
        "",
        config=True,
        help="""The group policy (YAML): per group, the profiles, running codespaces, GPUs,
        CPU and memory, datasets and job/deploy backends its members may use (README:
        Identity and policy). Empty: no policy, everything is allowed.""",
    )

    policy_gpus = Float(0.0, help="The GPUs this codespace holds under the policy (state).")

    def load_state(self, state: dict[str, Any]) -> None:
        super().load_state(state)  # type: ignore[misc]
        self.policy_gpus = float(state.get("policy_gpus", 0.0))

    def get_state(self) -> dict[str, Any]:
        state = super().get_state()  # type: ignore[misc]
        if self.policy_gpus:
            state["policy_gpus"] = self.policy_gpus
        return state

    def user_policy(self) -> Effective | None:
        policy = read_policy(self.policy_file)
        return None if policy is None else policy.for_groups(group_names(self.user))

    def _other_codespaces(self) -> list[Any]:
        """The user's other codespaces that run or start (this one never counts)."""
        spawners = getattr(self.user, "spawners", {}) or {}
        return [s for s in dict(spawners).values() if s is not self and s.active]

    def check_policy_options(self, options: dict[str, Any]) -> None:
        """Refuse options the policy does not allow (:class:`PolicyRefused`, a ValueError)."""
        rules = self.user_policy()
        if rules is None:
            return
        rules.check_profile(options.get("profile") or None)
        rules.check_datasets(options.get("datasets") or [])
        running = len(self._other_codespaces())
        if self.active and not self.pending:  # checking for a new server with this one
            running += 1
        rules.check_count(running)

    def check_policy_spec(self, spec: Codespace, gpus: float | None = None) -> None:
        """Refuse what the repository asks for beyond the policy: ``gpus`` is the share this
        codespace would hold (default: the spec's request)."""
        rules = self.user_policy()
        if rules is None:
            return
        asked = gpu_amount(spec.resources.gpu) if gpus is None else gpus
        in_use = sum(getattr(s, "policy_gpus", 0.0) for s in self._other_codespaces())
        rules.check_gpus(in_use, asked)
        cpu, memory = _resources(spec)
        rules.check_resources(cpu, memory)
        rules.check_datasets(dataset.name for dataset in spec.datasets)
        self.policy_gpus = asked

    def enforce_policy_spec(self, spec: Codespace, say: Callable[[str], None]) -> Codespace:
        """:meth:`check_policy_spec`, except that an *optional* GPU beyond the user's GPUs
        is dropped (``say`` tells why): returns the spec to start with."""
        try:
            self.check_policy_spec(spec)
        except PolicyRefused as refusal:
            gpu = spec.resources.gpu
            if refusal.rule != "gpus" or gpu is None or not gpu.optional:
                raise
            say(f"warning: GPU: starting without a GPU: {refusal}")
            spec = spec.model_copy(
                update={"resources": spec.resources.model_copy(update={"gpu": None})}
            )
            self.check_policy_spec(spec)
        return spec

    def policy_env(self) -> dict[str, str]:
        """The user's rules for the codespace's server extension (nothing without a policy)."""
        rules = self.user_policy()
        return {} if rules is None else {POLICY_ENV: rules.to_json()}

    def allowed_profile_slugs(self, slugs: Sequence[str]) -> list[str]:
        rules = self.user_policy()
        return list(slugs) if rules is None else rules.allowed_profiles(slugs)

    def allowed_dataset_names(self, names: Iterable[str]) -> list[str]:
        rules = self.user_policy()
        return list(names) if rules is None else rules.allowed_datasets(names)


def _resources(spec: Codespace) -> tuple[float | None, int | None]:
    from codespace.kube.quantity import to_bytes, to_cores

    cpu = spec.resources.cpu
    memory = spec.resources.memory
    return (
        None if cpu is None else to_cores(cpu),
        None if memory is None else to_bytes(memory),
    )
