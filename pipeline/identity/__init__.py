"""Who is acting: users, roles and grants, API tokens, browser sessions (issue 15).

The CLI acts as the operating-system user that owns the workspace (``actors.os_identity``); the service
acts as the user it authenticated by token, session cookie or a trusted SSO proxy. Either way the one
type passed down is ``actors.Identity``, and the actor of every audit entry is ``Identity.actor``.
"""
