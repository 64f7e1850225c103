"""api_client/panel"""
