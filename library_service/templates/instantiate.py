"""InstantiateTemplate: a user's own script made from an installed template.

The copy is a plain script (``is_template`` false) that remembers its template
(``template_name``, ``template_version`` at the time). Its content is the template's,
byte for byte (same digest); the given values become the defaults of its declared
parameters, so an assignment needs to give only what differs. Template upgrades never
touch it.

Decisions (for the docs):
- Only parameters the template declares may be given: another name is INVALID_ARGUMENT
  on ``parameter_values[NAME]``, all bad names reported at once.
- SECRET parameters cannot be given here: a default is stored in the clear with the
  script. Their values belong on the assignment, which keeps them encrypted.
- ``request_id`` as for CreateScript: a repeated one returns the script made the first time.
- Its versions' author is ``template:<name>@<version>``.
"""

from __future__ import annotations

from collections.abc import Mapping

from sqlalchemy import select

from library_service.context import LibraryContext
from library_service.domain import parameters, scripts, versions
from library_service.domain.parameters import ParameterSpec
from library_service.domain.validation import MAX_DESCRIPTION_LENGTH, check_name, check_text
from library_service.store import models
from shared.errors import InvalidArgument, NotFound, Violations


def _check_request(
    template_name: str, script_name: str, description: str, request_id: str
) -> tuple[str, str]:
    problems = Violations()
    names = []
    for field, value, required in (
        ("template_name", template_name, True),
        ("script_name", script_name, True),
        ("request_id", request_id, False),
    ):
        try:
            names.append(check_name(field, value, required=required))
        except InvalidArgument as error:  # collected: all bad fields are reported at once
            problems.items.extend(error.violations)
            names.append("")
    try:
        check_text("description", description, MAX_DESCRIPTION_LENGTH)
    except InvalidArgument as error:
        problems.items.extend(error.violations)
    problems.raise_if_any()
    return names[0], names[1]


def _check_values(template: models.Script, values: Mapping[str, str]) -> dict[str, ParameterSpec]:
    """The declarations of the copy: the template's, with the given values as defaults."""
    declared = {p["name"]: p for p in template.parameters or []}
    problems = Violations()
    for name in sorted(values):
        field = f"parameter_values[{name}]"
        value = values[name]
        parameter = declared.get(name)
        if parameter is None:
            known = ", ".join(declared) or "none"
            problems.add(
                field,
                f"is not a parameter of template {template.template_name!r} (it declares: {known})",
            )
        elif parameter.get("type") == parameters.SECRET:
            problems.add(
                field,
                "is a secret parameter: give its value on the assignment, where it is kept "
                "encrypted (a template copy's defaults are stored in the clear)",
            )
        elif "\x00" in value:
            problems.add(field, "must not contain NUL characters")
        elif len(value) > parameters.MAX_DEFAULT_LENGTH:
            problems.add(field, f"must be at most {parameters.MAX_DEFAULT_LENGTH} characters")
    problems.raise_if_any()
    specs = {spec.name: spec for spec in parameters.explicit_of(template.parameters or [])}
    for name, value in values.items():
        parameter = declared[name]
        specs[name] = ParameterSpec(
            name=name,
            type=parameter.get("type", parameters.TEXT),
            description=parameter.get("description", ""),
            default_value=value,
            has_default=True,
        )
    return specs


async def instantiate(
    ctx: LibraryContext,
    template_name: str,
    script_name: str,
    values: Mapping[str, str],
    *,
    description: str = "",
    request_id: str = "",
) -> scripts.ScriptView:
    """Create the copy (see the module's decisions). Bad input changes nothing."""
    template_name, script_name = _check_request(template_name, script_name, description, request_id)
    S = models.Script
    async with ctx.database.transaction() as session:
        template = await session.scalar(
            select(S).where(S.is_template.is_(True), S.template_name == template_name)
        )
        if template is None:
            raise NotFound(
                f"no template named {template_name!r}", metadata={"template_name": template_name}
            )
        content = (await versions.content_of(session, template.current_digest)).content
    specs = _check_values(template, values)
    return await scripts.create_script(
        ctx,
        scripts.ScriptFields(
            name=script_name,
            description=description or template.description,
            category=template.category,
            content=content,
            default_timeout_seconds=template.default_timeout_seconds,
            default_run_on=template.default_run_on,
            parameters=list(specs.values()),
        ),
        author=f"template:{template_name}@{template.template_version}",
        request_id=request_id,
        origin=scripts.TemplateOrigin(
            is_template=False,
            template_name=template_name,
            template_version=template.template_version,
        ),
    )
