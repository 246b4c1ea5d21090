"""Forms of the admin's own pages (login). Model forms come from Flask-Admin."""

from flask_wtf import FlaskForm
from wtforms import PasswordField, StringField
from wtforms.validators import DataRequired, Length


class LoginForm(FlaskForm):
    """Username and password; CSRF-protected like every form."""

    username = StringField("Username", validators=[DataRequired(), Length(max=64)])
    password = PasswordField("Password", validators=[DataRequired(), Length(max=256)])


class AdminModelForm(FlaskForm):
    """Base of Flask-Admin model forms: Flask-WTF's CSRF plus the edited object.

    Flask-Admin's own form base remembers the edited object as ``_obj``; its ``Unique``
    validator needs that to accept a row's unchanged unique value (a name, a Telegram id) when
    the row is edited. ``FlaskForm`` is required for ``CSRFProtect``, so this restores ``_obj``.
    """

    def __init__(self, formdata: object = None, obj: object = None, **kwargs: object) -> None:
        self._obj = obj
        super().__init__(formdata=formdata, obj=obj, **kwargs)
