"""The master key: ``ESB_MASTER_KEY``, else ``ESB_MASTER_KEY_FILE``, else (development mode
only) a key generated once in the data directory. Production without one fails at start-up."""

from __future__ import annotations

from esb.crypto.sealing import MasterKey
from esb.devkeys import dev_key
from esb.errors import ConfigurationError
from esb.settings import Settings

DEV_KEY_FILE = "dev-master-key"


def load_master_key(settings: Settings) -> MasterKey:
    if settings.master_key is not None:
        return MasterKey.from_text(settings.master_key.get_secret_value())
    if settings.master_key_file is not None:
        try:
            return MasterKey.from_text(settings.master_key_file.read_text())
        except OSError as exc:
            raise ConfigurationError(f"ESB_MASTER_KEY_FILE cannot be read: {exc}") from None
    if settings.mode != "development":
        raise ConfigurationError(
            "ESB_MASTER_KEY or ESB_MASTER_KEY_FILE is required outside development mode "
            "(personal fields are encrypted under it); generate one with "
            "`python -c 'import base64,os; print(base64.b64encode(os.urandom(32)).decode())'`")
    return MasterKey.from_text(dev_key(settings.data_dir / DEV_KEY_FILE,
                                       MasterKey.generate_text))
