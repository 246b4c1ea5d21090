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

    def validate(self, extra_validators: object = None) -> bool:
        """Validate, refusing a NUL character in any text field (PostgreSQL cannot store one).

        Args:
            extra_validators: As for ``FlaskForm.validate``.

        Returns:
            Whether the form is valid; a field holding NUL carries an error to show.
        """
        holding_nul = [f for f in self if isinstance(f.data, str) and "\x00" in f.data]
        for field in holding_nul:  # checked first: validators such as Unique query with it
            field.errors = ["Must not hold NUL characters."]
        if holding_nul:
            return False
        return super().validate(extra_validators=extra_validators)
