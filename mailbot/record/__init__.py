"""What the bot did, durably: the state database (`store`), the mail states, and the earlier
requests the checks consult (`history`)."""
