"""``disk_objectstore.backup_utils``: incremental backups with rsync, as disk-objectstore 1.5.

``BackupManager`` keeps disk-objectstore's interface and layout (``<dest>/backup_<UTC time>_<4
chars>``, a ``last-backup`` symlink, ``keep`` previous backups; local or ``host:path``
destinations over ssh), which aiida-core's ``verdi storage backup`` uses.

``backup_container`` copies a live container in disk-objectstore's safe order (loose objects,
a consistent snapshot of the index, packs, the rest), with two differences: the snapshot of
``packs.idx`` is made by rsdos's own SQLite (Python's ``sqlite3`` must not open a database
that rsdos has open in the same process), and loose objects are hard-linked to the previous
backup (disk-objectstore 1.5 passes a wrong ``--link-dest`` and always copies them).
"""

from __future__ import annotations

import logging
import random
import re
import shutil
import string
import subprocess
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Optional

LOGGER = logging.getLogger(__name__)

__all__ = ('BackupError', 'BackupManager', 'backup_container', 'is_exe_found', 'split_remote_and_path')

LIVE_FOLDER = 'live-backup'
LAST_LINK = 'last-backup'


class BackupError(Exception):
    """Raised when a backup fails."""


def split_remote_and_path(dest: str) -> tuple[Optional[str], Path]:
    """Split ``host:path`` into ``('host', Path('path'))``; a local path gives ``(None, path)``.

    :raises ValueError: for more than one colon.
    """
    parts = str(dest).split(':')
    if len(parts) == 1:
        return None, Path(dest)
    if len(parts) == 2:
        return parts[0], Path(parts[1])
    raise ValueError('Invalid destination format: <remote>:<path>')


def is_exe_found(exe: str) -> bool:
    """True if ``exe`` is on the PATH."""
    return shutil.which(exe) is not None


class BackupManager:
    """Configuration and helpers of a backup destination; the backup itself is a function
    given to :meth:`backup_auto_folders` (``backup_container`` for a container, or
    aiida-core's storage backup).

    :param dest: a local path or ``host:path`` (reached with ssh).
    :param keep: number of previous backups to keep besides the new one (``None``: keep all).
    :param rsync_exe: the rsync executable (default ``rsync``).
    :raises ValueError: for a negative ``keep``, a missing rsync, or a destination that cannot
        be created.
    :raises BackupError: if the remote host cannot be reached.
    """

    def __init__(self, dest: str, keep: Optional[int] = None, rsync_exe: Optional[str] = None) -> None:
        self.dest = dest
        self.keep = keep
        self.remote, self.path = split_remote_and_path(dest)
        self.rsync_exe = rsync_exe if rsync_exe is not None else 'rsync'
        if self.keep is not None and self.keep < 0:
            raise ValueError("Input validation failed: keep variable can't be negative!")
        if self.remote:
            self.check_if_remote_accessible()
        if not is_exe_found(self.rsync_exe):
            raise ValueError(f'Input validation failed: {self.rsync_exe} not accessible.')
        if not self.check_path_exists(self.path):
            if not self.run_cmd(['mkdir', str(self.path)])[0]:
                raise ValueError(f"Input validation failed: Couldn't access/create '{self.path!s}'!")
        self.rsync_version = self.get_rsync_major_version()

    def check_if_remote_accessible(self) -> None:
        """Raise ``BackupError`` if the remote host cannot be reached with ssh."""
        LOGGER.info("Checking if '%s' is accessible...", self.remote)
        if not self.run_cmd(['exit'])[0]:
            raise BackupError(f"Remote '{self.remote}' is not accessible!")
        LOGGER.info("Success! '%s' is accessible!", self.remote)

    def check_path_exists(self, path: Path) -> bool:
        """True if ``path`` exists at the destination."""
        return self.run_cmd(['[', '-e', str(path), ']'])[0]

    def run_cmd(self, args: list) -> tuple[bool, str]:
        """Run a command at the destination (through ssh if remote); return
        ``(success, stdout)``."""
        all_args = list(args)
        if self.remote:
            all_args = ['ssh', self.remote, *all_args]
        res = subprocess.run(all_args, capture_output=True, text=True, check=False)
        LOGGER.debug(
            'Command: %s\n  Exit Code: %d\n  stdout/stderr: %s\n%s', all_args, res.returncode, res.stdout, res.stderr
        )
        return res.returncode == 0, res.stdout

    def get_rsync_major_version(self) -> Optional[int]:
        """The major version of rsync, or None if it cannot be told."""
        res = subprocess.run([self.rsync_exe, '--version'], capture_output=True, text=True, check=False)
        match = re.search(r'rsync\s+version\s+(\d+)\.\d+\.\d+', res.stdout)
        return int(match.group(1)) if match else None

    def call_rsync(
        self,
        src: Path,
        dest: Path,
        link_dest: Optional[Path] = None,
        src_trailing_slash: bool = False,
        dest_trailing_slash: bool = False,
        extra_args: Optional[list] = None,
    ) -> None:
        """Copy ``src`` (local) to ``dest`` (at the destination) with ``rsync -azh
        --no-whole-file``, hard-linking unchanged files to ``link_dest`` if given.

        :raises BackupError: if rsync fails.
        """
        args = [self.rsync_exe, '-azh', '--no-whole-file']
        if extra_args:
            args.extend(extra_args)
        if LOGGER.isEnabledFor(logging.INFO):
            args.append('--info=progress2,stats1' if (self.rsync_version or 0) >= 3 else '--progress')
        if LOGGER.isEnabledFor(logging.DEBUG):
            args.append('-vv')
        if link_dest is not None:
            target = str(link_dest) if self.remote else str(Path(link_dest).resolve())
            args.append(f'--link-dest={target}')
        src_str = str(src) + ('/' if src_trailing_slash else '')
        dest_str = str(dest) + ('/' if dest_trailing_slash else '')
        if self.remote:
            dest_str = f'{self.remote}:{dest_str}'
        args.extend([src_str, dest_str])
        LOGGER.debug('Running: %s', args)
        res = subprocess.run(args, capture_output=True, text=True, check=False)
        if res.stdout:
            LOGGER.info(res.stdout.rstrip())
        if res.returncode != 0:
            raise BackupError(f'rsync failed for: {src_str} to {dest_str} (exit code {res.returncode}): {res.stderr}')

    def get_existing_backup_folders(self) -> list[Path]:
        """The backup folders (``backup_*_*``) at the destination, oldest first."""
        ok, stdout = self.run_cmd(['find', str(self.path), '-maxdepth', '1', '-type', 'd', '-name', 'backup_*_*'])
        if not ok:
            raise BackupError(f"Couldn't list the backups in {self.path!s}")
        return sorted(Path(line) for line in stdout.splitlines() if line.strip())

    def get_last_backup_folder(self) -> Optional[Path]:
        """The newest backup folder, or None."""
        folders = self.get_existing_backup_folders()
        return folders[-1] if folders else None

    def delete_old_backups(self) -> None:
        """Delete the oldest backups so that ``keep + 1`` remain (failures only warn)."""
        if self.keep is None:
            return
        folders = self.get_existing_backup_folders()
        for folder in folders[: max(len(folders) - self.keep - 1, 0)]:
            if self.run_cmd(['rm', '-rf', str(folder)])[0]:
                LOGGER.info('Deleted old backup: %s', folder)
            else:
                LOGGER.warning('Warning: could not delete old backup: %s', folder)

    def backup_auto_folders(self, backup_func: Callable[[Path, Optional[Path]], Any]) -> None:
        """Run ``backup_func(live_folder, previous_backup)`` and turn the live folder into a
        ``backup_<time>_<id>`` folder, update the ``last-backup`` symlink and delete old backups.

        :raises BackupError: if the backup cannot be completed.
        """
        live = self.path / LIVE_FOLDER
        previous = self.get_last_backup_folder()
        if previous is not None:
            LOGGER.info('Last backup is %s, using it for rsync --link-dest.', previous)
        else:
            LOGGER.info("Couldn't find a previous backup to increment from.")
        backup_func(live, previous)
        stamp = datetime.now(timezone.utc).strftime('%Y%m%d%H%M%S')
        if previous is not None and previous.name[len('backup_') :].split('_')[0] >= stamp:
            # Names sort by time only to the second: wait for the next one, so that the newest
            # backup is always the last by name (which is how the previous one is found).
            time.sleep(1.0 - datetime.now(timezone.utc).microsecond / 1e6 + 0.01)
            stamp = datetime.now(timezone.utc).strftime('%Y%m%d%H%M%S')
        name = 'backup_' + stamp + '_' + ''.join(random.choices(string.ascii_lowercase + string.digits, k=4))
        if not self.run_cmd(['mv', str(live), str(self.path / name)])[0]:
            raise BackupError(f"Failed to move '{live}' to '{self.path / name}'")
        LOGGER.info('Backup moved from %s to %s.', live, self.path / name)
        if not self.run_cmd(['ln', '-sfn', name, str(self.path / LAST_LINK)])[0]:
            LOGGER.warning("Couldn't create symlink '%s'. Perhaps the filesystem doesn't support it.", LAST_LINK)
        else:
            LOGGER.info("Added symlink '%s' to '%s'.", LAST_LINK, name)
        self.delete_old_backups()


def backup_container(
    manager: BackupManager,
    container: Any,
    path: Path,
    prev_backup: Optional[Path] = None,
) -> None:
    """Back up a container into ``path`` (at the manager's destination), safe while the
    container is in use (but not during ``repack`` or ``delete_objects``).

    Order: (1) loose objects, (2) a consistent snapshot of ``packs.idx``, (3) the packs, (4)
    everything else. An object packed and cleaned during (1) is in a pack copied in (3); every
    row of the snapshot (2) points to bytes the packs had before (3) copied them.

    :raises BackupError: if a step fails.
    """
    root = Path(container.get_folder())
    rs = getattr(container, '_rs', None)
    if rs is None:
        raise BackupError('backup_container needs an rsdos container (disk_objectstore.Container)')
    manager.call_rsync(root / 'loose', path, link_dest=prev_backup, dest_trailing_slash=True)
    with tempfile.TemporaryDirectory() as tmp:
        dump = Path(tmp) / 'packs.idx'
        try:
            rs.backup_index(str(dump))
        except Exception as exc:
            raise BackupError(f"Couldn't make a snapshot of the index of {root}: {exc}") from exc
        if not dump.exists():
            raise BackupError(f"Couldn't make a snapshot of the index of {root}")
        manager.call_rsync(dump, path, dest_trailing_slash=True)
    manager.call_rsync(root / 'packs', path, link_dest=prev_backup, dest_trailing_slash=True, extra_args=['--exclude', '*.lock'])
    manager.call_rsync(
        root,
        path,
        link_dest=prev_backup,
        src_trailing_slash=True,
        dest_trailing_slash=True,
        extra_args=[
            '--exclude', 'loose',
            '--exclude', 'packs.idx',
            '--exclude', 'packs.idx-wal',
            '--exclude', 'packs.idx-shm',
            '--exclude', 'packs',
            '--exclude', 'rsdos.lock',
        ],
    )  # fmt: skip
    LOGGER.info('Backed up the container %s to %s', root, path)
