"""The files under /etc/netns of a :class:`~nsnet.testing.fakekernel.FakeKernel`, in memory."""

from __future__ import annotations

from nsnet.errors import KernelError


class FakeFiles:
    """``/etc/netns/<ns>/<name>`` by (ns, name), and the directories there; a step per change."""

    def __init__(self) -> None:
        self.files: dict[tuple[str, str], str] = {}
        self.dirs: set[str] = set()

    def _step(self, what: str) -> KernelError | None:
        raise NotImplementedError

    def add_file(self, ns: str, name: str, text: str) -> None:
        """Put a file there as someone else would (no step, never fails)."""
        self.dirs.add(ns)
        self.files[ns, name] = text

    def files_snapshot(self) -> dict[str, str]:
        return {f"{ns}/{name}": text for (ns, name), text in sorted(self.files.items())} | {
            f"{ns}/": "" for ns in sorted(self.dirs)
        }

    def tidy_files(self, ns: str) -> None:
        if not any(n == ns for n, _ in self.files):
            self.dirs.discard(ns)

    def read_files(self, ns: str, names: list[str]) -> dict[str, str]:
        return {name: self.files[ns, name] for name in names if (ns, name) in self.files}

    def write_file(self, ns: str, name: str, text: str, mark: str) -> bool:
        error = self._step(f"write /etc/netns/{ns}/{name}")
        if error is not None:
            raise error
        if not self.files.get((ns, name), mark).startswith(mark):
            raise KernelError(f"/etc/netns/{ns}/{name} already exists and was not written by nsnet for this lab")
        made = ns not in self.dirs
        self.dirs.add(ns)
        self.files[ns, name] = text
        return made

    def remove_file(self, ns: str, name: str, mark: str, directory: bool) -> None:
        error = self._step(f"remove /etc/netns/{ns}/{name}")
        if error is not None:
            raise error
        if self.files.get((ns, name), "").startswith(mark) and (ns, name) in self.files:
            del self.files[ns, name]
        if directory and not any(n == ns for n, _ in self.files):
            self.dirs.discard(ns)
