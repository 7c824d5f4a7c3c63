"""What people read about the bot's work: the supervisors' digest, a customer code's history,
the held listing."""
