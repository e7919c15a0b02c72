"""Flask extensions, created unbound here and bound to an app by ``create_app()``.

``db`` (and ``Model``, which models subclass) is made in ``supporters.db``, beside the base it
is built on, and handed out here with the others.
"""

from flask_babel import Babel
from flask_limiter import Limiter
from flask_limiter.util import get_remote_address
from flask_login import LoginManager
from flask_migrate import Migrate
from flask_wtf import CSRFProtect

from supporters.db import Model, db

__all__ = ["Model", "babel", "csrf", "db", "limiter", "login_manager", "migrate"]

migrate = Migrate()
login_manager = LoginManager()
csrf = CSRFProtect()
babel = Babel()
limiter = Limiter(key_func=get_remote_address)
