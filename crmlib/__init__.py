"""crmlib"""
